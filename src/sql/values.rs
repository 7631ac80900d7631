//! `INSERT INTO t [(cols)] VALUES (…), (…)` whose cells are all literals,
//! read straight into one text column per target column, without building
//! a syntax tree: a tree costs hundreds of bytes per value (a 6.5 MB INSERT
//! took 470 MB), these columns cost about the text itself. Each cell is the
//! text the general path would take from the same literal (a number as
//! written, a string's contents, `true`/`false`, NULL), and the engine
//! converts both alike, so the answer cannot differ. Anything else
//! (expressions, casts, parameters, `E'…'` strings, comments, `ON
//! CONFLICT`, rows of different lengths) returns `None`: the statement then
//! takes the general path, which also words its errors.

use datafusion::arrow::array::{StringArray, StringBuilder};

/// A literal-only INSERT.
#[derive(Debug, Clone)]
pub struct LiteralInsert {
    /// The target relation, as `object_name` would normalize it.
    pub table: String,
    /// The target columns, normalized; empty: all, in order.
    pub columns: Vec<String>,
    /// One text column per value position (NULL for NULL / DEFAULT).
    pub values: Vec<StringArray>,
    pub rows: usize,
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A keyword (case-insensitive), followed by a non-identifier byte.
    fn keyword(&mut self, k: &str) -> bool {
        self.ws();
        let end = self.i + k.len();
        if end > self.s.len() || !self.s[self.i..end].eq_ignore_ascii_case(k.as_bytes()) {
            return false;
        }
        if self.s.get(end).is_some_and(|c| is_ident_byte(*c)) {
            return false;
        }
        self.i = end;
        true
    }

    /// An identifier: unquoted (lower-cased) or double-quoted.
    fn ident(&mut self) -> Option<String> {
        self.ws();
        match self.peek()? {
            b'"' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let c = self.peek()?;
                    self.i += 1;
                    if c == b'"' {
                        if self.peek() == Some(b'"') {
                            self.i += 1;
                            out.push(b'"');
                            continue;
                        }
                        break;
                    }
                    out.push(c);
                }
                String::from_utf8(out).ok().filter(|s| !s.is_empty())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.peek().is_some_and(is_ident_byte) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()
                    .map(|s| s.to_ascii_lowercase())
            }
            _ => None,
        }
    }

    /// One cell: `Some(None)` for NULL / DEFAULT, `None` for anything this
    /// reader does not take.
    fn cell(&mut self) -> Option<Option<String>> {
        self.ws();
        match self.peek()? {
            b'\'' => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    let c = self.peek()?;
                    self.i += 1;
                    if c == b'\'' {
                        if self.peek() == Some(b'\'') {
                            self.i += 1;
                            out.push(b'\'');
                            continue;
                        }
                        break;
                    }
                    out.push(c);
                }
                // 'a' 'b' (adjacent literals) is the general path's business
                let j = self.i;
                self.ws();
                if self.peek() == Some(b'\'') {
                    return None;
                }
                self.i = j;
                String::from_utf8(out).ok().map(Some)
            }
            b'-' => {
                self.i += 1;
                self.ws();
                self.number().map(|n| Some(format!("-{n}")))
            }
            c if c.is_ascii_digit() || c == b'.' => self.number().map(Some),
            _ => {
                if self.keyword("null") || self.keyword("default") {
                    Some(None)
                } else if self.keyword("true") {
                    Some(Some("true".into()))
                } else if self.keyword("false") {
                    Some(Some("false".into()))
                } else {
                    None
                }
            }
        }
    }

    /// A number as written: digits, an optional fraction and exponent.
    fn number(&mut self) -> Option<String> {
        let start = self.i;
        let digits = |sc: &mut Scan| {
            let b = sc.i;
            while sc.peek().is_some_and(|c| c.is_ascii_digit()) {
                sc.i += 1;
            }
            sc.i > b
        };
        let int = digits(self);
        let mut frac = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            frac = digits(self);
        }
        if !int && !frac {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        // a number must end here (not `1abc`, `1_000`, `1::int`)
        if self
            .peek()
            .is_some_and(|c| is_ident_byte(c) || c == b'.' || c == b':')
        {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .map(str::to_string)
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Reads `text` as a literal-only INSERT, or `None` (module documentation).
pub fn literal_insert(text: &str) -> Option<LiteralInsert> {
    let mut sc = Scan {
        s: text.as_bytes(),
        i: 0,
    };
    if !(sc.keyword("insert") && sc.keyword("into")) {
        return None;
    }
    let mut name = vec![sc.ident()?];
    while sc.eat(b'.') {
        name.push(sc.ident()?);
    }
    let table = match name.as_slice() {
        [t] => super::names::resolve(t),
        [s, t] => super::names::qualified(s, t),
        _ => return None,
    };
    let mut columns = Vec::new();
    if sc.eat(b'(') {
        loop {
            columns.push(sc.ident()?);
            if sc.eat(b')') {
                break;
            }
            if !sc.eat(b',') {
                return None;
            }
        }
    }
    if !sc.keyword("values") {
        return None;
    }
    let mut builders: Vec<StringBuilder> = Vec::new();
    let mut rows = 0usize;
    loop {
        if !sc.eat(b'(') {
            return None;
        }
        let mut k = 0;
        loop {
            let cell = sc.cell()?;
            if rows == 0 {
                builders.push(StringBuilder::new());
            }
            let b = builders.get_mut(k)?;
            match cell {
                Some(v) => b.append_value(v),
                None => b.append_null(),
            }
            k += 1;
            if sc.eat(b')') {
                break;
            }
            if !sc.eat(b',') {
                return None;
            }
        }
        if k != builders.len() {
            return None;
        }
        rows += 1;
        if !sc.eat(b',') {
            break;
        }
    }
    while sc.eat(b';') {}
    sc.ws();
    if sc.i != sc.s.len() {
        return None;
    }
    Some(LiteralInsert {
        table,
        columns,
        values: builders.iter_mut().map(|b| b.finish()).collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    fn cells(l: &LiteralInsert, col: usize) -> Vec<Option<String>> {
        let a = &l.values[col];
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    #[test]
    fn reads_literals_as_the_general_path_does() {
        let l = literal_insert(
            "insert INTO \"Bids\" (a, \"B\") VALUES (1, 'it''s'), (-2.5e3, NULL), (.5, 'x\\n'),(TRUE, DEFAULT);",
        )
        .unwrap();
        assert_eq!(l.table, "Bids");
        assert_eq!(l.columns, vec!["a", "B"]);
        assert_eq!(l.rows, 4);
        assert_eq!(
            cells(&l, 0),
            vec![
                Some("1".into()),
                Some("-2.5e3".into()),
                Some(".5".into()),
                Some("true".into())
            ]
        );
        assert_eq!(
            cells(&l, 1),
            vec![Some("it's".into()), None, Some("x\\n".into()), None]
        );
        assert_eq!(
            literal_insert("INSERT INTO public.t VALUES (1)")
                .unwrap()
                .table,
            "t"
        );
        assert_eq!(
            literal_insert("INSERT INTO s.t VALUES (1)").unwrap().table,
            "s.t"
        );
    }

    #[test]
    fn anything_else_takes_the_general_path() {
        for sql in [
            "INSERT INTO t VALUES (1 + 1)",
            "INSERT INTO t VALUES ($1)",
            "INSERT INTO t VALUES ('1'::int)",
            "INSERT INTO t VALUES (E'a\\nb')",
            "INSERT INTO t VALUES (now())",
            "INSERT INTO t VALUES (1), (1, 2)",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "INSERT INTO t VALUES (1) -- comment",
            "INSERT INTO t SELECT 1",
            "INSERT INTO d.s.t VALUES (1)",
            "INSERT INTO t VALUES ('a' 'b')",
            "INSERT INTO t VALUES (1abc)",
            "INSERT INTO t VALUES (+1)",
            "INSERT INTO t VALUES ('unterminated)",
        ] {
            assert!(literal_insert(sql).is_none(), "{sql}");
        }
    }
}

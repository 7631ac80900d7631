//! Decoding `COPY ... FROM STDIN` data (text and CSV formats) into Arrow
//! batches of a relation's column types.
//!
//! Data arrives in arbitrary chunks; records are cut at newlines (outside
//! quotes, for CSV), their fields collected per column as text, and every
//! `BATCH_ROWS` records the text columns are parsed into typed arrays in one
//! pass per column. Errors name the line (counted from 1, header included)
//! and the column, as Postgres does.

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;

use super::coerce::{self, CellErrorKind};
use crate::catalog::ColumnDef;

/// Records parsed into one Arrow batch.
pub const BATCH_ROWS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormatKind {
    Text,
    Csv,
    /// PostgreSQL's binary copy format (`super::binary`); COPY FROM only.
    Binary,
}

#[derive(Debug, Clone)]
pub struct CopyFormat {
    pub kind: CopyFormatKind,
    pub delimiter: u8,
    pub null: String,
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat {
            kind: CopyFormatKind::Text,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }

    pub fn binary() -> CopyFormat {
        CopyFormat {
            kind: CopyFormatKind::Binary,
            ..CopyFormat::text()
        }
    }

    pub fn csv() -> CopyFormat {
        CopyFormat {
            kind: CopyFormatKind::Csv,
            delimiter: b',',
            null: String::new(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CopyError {
    pub kind: CopyErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyErrorKind {
    /// 22P04: malformed data (column count, quoting)
    BadData,
    /// 22021: not UTF-8
    Encoding,
    /// A value that does not fit its column.
    Cell(CellErrorKind),
    /// 53200: the COPY holds more in memory than its limit
    TooBig,
}

/// Incremental decoder for one COPY.
pub struct CopyDecoder {
    relation: String,
    format: CopyFormat,
    /// Target columns, in input order, and their positions in the relation.
    columns: Vec<ColumnDef>,
    positions: Vec<usize>,
    /// Every relation column (for NULL-filling the ones not listed).
    all_columns: Vec<ColumnDef>,
    schema: SchemaRef,
    pending: Vec<u8>,
    /// How far `pending` has been scanned for the end of the line, and
    /// whether that point is inside CSV quotes (a long line arriving in
    /// many pieces is scanned once, not once per piece).
    scanned: usize,
    in_quotes: bool,
    /// Bytes the decoded rows hold so far, and the most allowed.
    held: usize,
    limit: Option<usize>,
    /// Lines consumed so far (the number of the last complete line).
    line: u64,
    header_done: bool,
    ended: bool,
    builders: Vec<StringBuilder>,
    batch_lines: Vec<u64>,
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Reused buffer for fields that need unescaping.
    scratch: String,
    /// Where a binary COPY is in its stream.
    binary: super::binary::BinaryReader,
}

impl CopyDecoder {
    /// `positions[i]` is the relation column that input field `i` fills.
    pub fn new(
        relation: &str,
        format: CopyFormat,
        all_columns: Vec<ColumnDef>,
        positions: Vec<usize>,
        schema: SchemaRef,
    ) -> CopyDecoder {
        let columns: Vec<ColumnDef> = positions.iter().map(|&p| all_columns[p].clone()).collect();
        let builders = columns
            .iter()
            .map(|_| StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8))
            .collect();
        CopyDecoder {
            relation: relation.to_string(),
            header_done: !format.header,
            format,
            columns,
            positions,
            all_columns,
            schema,
            pending: Vec::new(),
            scanned: 0,
            in_quotes: false,
            held: 0,
            limit: None,
            line: 0,
            ended: false,
            builders,
            batch_lines: Vec::with_capacity(BATCH_ROWS),
            batches: Vec::new(),
            rows: 0,
            scratch: String::new(),
            binary: Default::default(),
        }
    }

    /// Limits the memory the COPY holds before it is committed (decoded
    /// rows and an unfinished line): past it the COPY fails with 53200.
    pub fn with_limit(mut self, limit: Option<usize>) -> CopyDecoder {
        self.limit = limit;
        self
    }

    fn too_big(&self) -> CopyError {
        CopyError {
            kind: CopyErrorKind::TooBig,
            message: format!(
                "COPY {} holds more than {} bytes before it ends (--max-statement-memory); load it in parts",
                self.relation,
                self.limit.unwrap_or(0)
            ),
        }
    }

    /// Feeds a chunk of data.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), CopyError> {
        if self.ended {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        if let Some(limit) = self.limit {
            if self.held + self.pending.len() > limit {
                return Err(self.too_big());
            }
        }
        if self.format.kind == CopyFormatKind::Binary {
            return self.feed_binary();
        }
        let mut start = 0;
        let buf = std::mem::take(&mut self.pending);
        let mut in_quotes = self.in_quotes;
        let csv = self.format.kind == CopyFormatKind::Csv;
        let (quote, escape) = (self.format.quote, self.format.escape);
        let mut i = self.scanned;
        while i < buf.len() {
            let c = buf[i];
            if csv {
                if in_quotes {
                    if c == escape && escape != quote && i + 1 < buf.len() && buf[i + 1] == quote {
                        i += 2;
                        continue;
                    }
                    if c == quote {
                        in_quotes = false;
                    }
                } else if c == quote {
                    in_quotes = true;
                }
            }
            if c == b'\n' && !in_quotes {
                let mut rec = &buf[start..i];
                if rec.last() == Some(&b'\r') {
                    rec = &rec[..rec.len() - 1];
                }
                self.record(rec)?;
                start = i + 1;
                if self.ended {
                    break;
                }
            }
            i += 1;
        }
        let mut buf = buf;
        if start > 0 {
            buf.drain(..start);
        }
        self.scanned = buf.len();
        // an escape at the very end is read again with what follows it
        if csv && in_quotes && escape != quote && buf.last() == Some(&escape) {
            self.scanned -= 1;
        }
        self.in_quotes = in_quotes;
        self.pending = buf;
        if self.ended {
            self.pending.clear();
            self.scanned = 0;
        }
        Ok(())
    }

    /// Reads the whole rows of a binary COPY that have arrived.
    fn feed_binary(&mut self) -> Result<(), CopyError> {
        use super::binary::Step;
        let buf = std::mem::take(&mut self.pending);
        let mut at = 0;
        while !self.ended {
            let (step, used) = self
                .binary
                .next(&buf[at..])
                .map_err(|m| self.bad(self.line + 1, m))?;
            at += used;
            match step {
                Step::More => break,
                Step::End => self.ended = true,
                Step::Row(fields) => self.binary_row(fields)?,
            }
        }
        if !self.ended {
            self.pending = buf[at..].to_vec();
        }
        Ok(())
    }

    /// One row of a binary COPY, its values as text for the typed parse.
    fn binary_row(&mut self, fields: Vec<Option<Vec<u8>>>) -> Result<(), CopyError> {
        self.line += 1;
        let line = self.line;
        if fields.len() != self.columns.len() {
            return Err(self.bad(
                line,
                format!(
                    "row field count is {}, expected {}",
                    fields.len(),
                    self.columns.len()
                ),
            ));
        }
        for (k, f) in fields.iter().enumerate() {
            match f {
                None => self.builders[k].append_null(),
                Some(v) => {
                    let col = &self.columns[k];
                    let text = super::binary::to_text(v, &col.ty).map_err(|m| {
                        self.bad(line, format!("{m}, column {}", self.columns[k].name))
                    })?;
                    if let Some(m) = super::invalid_text(text.as_bytes()) {
                        return Err(CopyError {
                            kind: CopyErrorKind::Encoding,
                            message: format!("{m} (COPY {}, line {line})", self.relation),
                        });
                    }
                    self.builders[k].append_value(text);
                }
            }
        }
        self.batch_lines.push(line);
        if self.batch_lines.len() >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Ends the input: decodes the last line and the last batch.
    pub fn finish(mut self) -> Result<(Vec<RecordBatch>, usize), CopyError> {
        if self.format.kind == CopyFormatKind::Binary {
            if !self.ended {
                return Err(self.bad(
                    self.line + 1,
                    "unexpected end of file: the binary COPY data has no trailer".into(),
                ));
            }
            self.flush_batch()?;
            return Ok((self.batches, self.rows));
        }
        if !self.ended && !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let mut rec: &[u8] = &rest;
            if rec.last() == Some(&b'\r') {
                rec = &rec[..rec.len() - 1];
            }
            if self.format.kind == CopyFormatKind::Csv && unbalanced_quotes(rec, self.format.quote)
            {
                return Err(self.bad(self.line + 1, "unterminated CSV quoted field".into()));
            }
            self.record(rec)?;
        }
        self.flush_batch()?;
        Ok((self.batches, self.rows))
    }

    fn bad(&self, line: u64, msg: String) -> CopyError {
        CopyError {
            kind: CopyErrorKind::BadData,
            message: format!("{msg} (COPY {}, line {line})", self.relation),
        }
    }

    fn record(&mut self, rec: &[u8]) -> Result<(), CopyError> {
        self.line += 1;
        let line = self.line;
        if !self.header_done {
            self.header_done = true;
            return Ok(());
        }
        if rec == b"\\." {
            self.ended = true;
            return Ok(());
        }
        if let Some(m) = super::invalid_text(rec) {
            return Err(CopyError {
                kind: CopyErrorKind::Encoding,
                message: format!("{m} (COPY {}, line {line})", self.relation),
            });
        }
        let text = std::str::from_utf8(rec).map_err(|_| CopyError {
            kind: CopyErrorKind::Encoding,
            message: format!(
                "invalid byte sequence for encoding \"UTF8\" (COPY {}, line {line})",
                self.relation
            ),
        })?;
        let mut sink = Fields {
            builders: &mut self.builders,
            n: 0,
        };
        let r = match self.format.kind {
            CopyFormatKind::Text => split_text(
                text,
                self.format.delimiter as char,
                &self.format.null,
                &mut sink,
                &mut self.scratch,
            ),
            CopyFormatKind::Csv => split_csv(text, &self.format, &mut sink, &mut self.scratch),
            CopyFormatKind::Binary => Err("binary data read as text".into()),
        };
        let got = sink.n;
        r.map_err(|m| self.bad(line, m))?;
        if got < self.columns.len() {
            let missing = &self.columns[got].name;
            return Err(self.bad(line, format!("missing data for column \"{missing}\"")));
        }
        self.batch_lines.push(line);
        if self.batch_lines.len() >= BATCH_ROWS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), CopyError> {
        let n = self.batch_lines.len();
        if n == 0 {
            return Ok(());
        }
        let mut arrays: Vec<Option<ArrayRef>> = vec![None; self.all_columns.len()];
        for (k, b) in self.builders.iter_mut().enumerate() {
            let texts = b.finish();
            let col = &self.columns[k];
            let typed = coerce::from_text(&texts, col).map_err(|e| CopyError {
                kind: CopyErrorKind::Cell(e.kind),
                message: format!(
                    "{} (COPY {}, line {}, column {})",
                    e.message, self.relation, self.batch_lines[e.row], col.name
                ),
            })?;
            if !col.nullable && typed.null_count() > 0 {
                let row = (0..n).find(|&i| typed.is_null(i)).unwrap_or(0);
                return Err(CopyError {
                    kind: CopyErrorKind::Cell(CellErrorKind::NotNull),
                    message: format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint (COPY {}, line {})",
                        col.name, self.relation, self.relation, self.batch_lines[row]
                    ),
                });
            }
            arrays[self.positions[k]] = Some(typed);
        }
        let mut columns = Vec::with_capacity(arrays.len());
        for (i, a) in arrays.into_iter().enumerate() {
            let col = &self.all_columns[i];
            match a {
                Some(a) => columns.push(a),
                None if col.nullable => {
                    columns.push(datafusion::arrow::array::new_null_array(&col.ty.to_arrow(), n))
                }
                None => {
                    return Err(CopyError {
                        kind: CopyErrorKind::Cell(CellErrorKind::NotNull),
                        message: format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint (COPY {}, line {})",
                            col.name, self.relation, self.relation, self.batch_lines[0]
                        ),
                    })
                }
            }
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| CopyError {
            kind: CopyErrorKind::BadData,
            message: e.to_string(),
        })?;
        self.rows += n;
        self.held += batch.get_array_memory_size();
        self.batches.push(batch);
        self.batch_lines.clear();
        if let Some(limit) = self.limit {
            if self.held > limit {
                return Err(self.too_big());
            }
        }
        Ok(())
    }
}

fn unbalanced_quotes(rec: &[u8], quote: u8) -> bool {
    rec.iter().filter(|&&c| c == quote).count() % 2 == 1
}

/// Receives the fields of one record, straight into the column builders.
/// A record with more fields than columns is an error; the decoder is then
/// discarded, so the fields already pushed do not matter.
struct Fields<'a> {
    builders: &'a mut [StringBuilder],
    n: usize,
}

impl Fields<'_> {
    fn push(&mut self, v: Option<&str>) -> Result<(), String> {
        let b = self
            .builders
            .get_mut(self.n)
            .ok_or_else(|| "extra data after last expected column".to_string())?;
        match v {
            Some(s) => b.append_value(s),
            None => b.append_null(),
        }
        self.n += 1;
        Ok(())
    }
}

/// Splits a text-format line; `\N` (or the NULL string) is NULL, backslash
/// escapes are decoded.
fn split_text(
    line: &str,
    delim: char,
    null: &str,
    out: &mut Fields,
    scratch: &mut String,
) -> Result<(), String> {
    for raw in line.split(delim) {
        if raw == null {
            out.push(None)?;
            continue;
        }
        if !raw.contains('\\') {
            out.push(Some(raw))?;
            continue;
        }
        scratch.clear();
        let s = &mut *scratch;
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                s.push(c);
                continue;
            }
            match chars.next() {
                Some('b') => s.push('\u{8}'),
                Some('f') => s.push('\u{c}'),
                Some('n') => s.push('\n'),
                Some('r') => s.push('\r'),
                Some('t') => s.push('\t'),
                Some('v') => s.push('\u{b}'),
                Some(d @ '0'..='7') => {
                    let mut v = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(x) => {
                                v = v * 8 + x;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    s.push(char::from_u32(v).ok_or("invalid octal escape")?);
                }
                Some('x') => {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 2 {
                        match chars.peek().and_then(|c| c.to_digit(16)) {
                            Some(x) => {
                                v = v * 16 + x;
                                chars.next();
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    if n == 0 {
                        s.push('x');
                    } else {
                        s.push(char::from_u32(v).ok_or("invalid hex escape")?);
                    }
                }
                Some(other) => s.push(other),
                None => return Err("end-of-copy marker corrupt: trailing backslash".into()),
            }
        }
        out.push(Some(s))?;
    }
    Ok(())
}

/// Splits a CSV record. An unquoted field equal to the NULL string is NULL;
/// a quoted one never is. Unquoted fields are passed on without copying.
fn split_csv(
    rec: &str,
    f: &CopyFormat,
    out: &mut Fields,
    scratch: &mut String,
) -> Result<(), String> {
    let (delim, quote, escape) = (f.delimiter, f.quote, f.escape);
    let b = rec.as_bytes();
    let mut i = 0;
    loop {
        if i < b.len() && b[i] == quote {
            // quoted: collect into scratch, then any unquoted tail
            scratch.clear();
            let mut start = i + 1;
            i += 1;
            loop {
                if i >= b.len() {
                    return Err("unterminated CSV quoted field".into());
                }
                let c = b[i];
                if c == escape && i + 1 < b.len() && b[i + 1] == quote {
                    scratch.push_str(&rec[start..i]);
                    scratch.push(quote as char);
                    i += 2;
                    start = i;
                } else if c == quote {
                    scratch.push_str(&rec[start..i]);
                    i += 1;
                    break;
                } else {
                    i += 1;
                }
            }
            let tail_start = i;
            while i < b.len() && b[i] != delim {
                i += 1;
            }
            scratch.push_str(&rec[tail_start..i]);
            out.push(Some(scratch))?;
        } else {
            let start = i;
            while i < b.len() && b[i] != delim {
                i += 1;
            }
            let field = &rec[start..i];
            if field == f.null {
                out.push(None)?;
            } else {
                out.push(Some(field))?;
            }
        }
        if i >= b.len() {
            break;
        }
        i += 1; // delimiter
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SqlType;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int64Type, Schema};
    use std::sync::Arc;

    fn cols() -> Vec<ColumnDef> {
        vec![
            ColumnDef {
                name: "id".into(),
                ty: SqlType::Int8,
                nullable: false,
            },
            ColumnDef {
                name: "name".into(),
                ty: SqlType::Text,
                nullable: true,
            },
        ]
    }

    fn decoder(f: CopyFormat) -> CopyDecoder {
        let c = cols();
        let schema = Arc::new(Schema::new(
            c.iter()
                .map(|c| c.ty.field(&c.name, c.nullable))
                .collect::<Vec<_>>(),
        ));
        CopyDecoder::new("t", f, c, vec![0, 1], schema)
    }

    #[test]
    fn text_format_across_chunks() {
        let mut d = decoder(CopyFormat::text());
        d.feed(b"1\ta\\tb\n2\t\\N\n3").unwrap();
        d.feed(b"\tlast\n").unwrap();
        let (batches, rows) = d.finish().unwrap();
        assert_eq!(rows, 3);
        let b = &batches[0];
        assert_eq!(b.column(1).as_string::<i32>().value(0), "a\tb");
        assert!(b.column(1).is_null(1));
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(2), 3);
    }

    #[test]
    fn csv_with_header_quotes_and_newlines() {
        let mut f = CopyFormat::csv();
        f.header = true;
        let mut d = decoder(f);
        d.feed(b"id,name\r\n1,\"x, \"\"y\"\"\nz\"\n2,\n3,\"\"")
            .unwrap();
        let (batches, rows) = d.finish().unwrap();
        assert_eq!(rows, 3);
        let names = batches[0].column(1).as_string::<i32>();
        assert_eq!(names.value(0), "x, \"y\"\nz");
        assert!(batches[0].column(1).is_null(1));
        assert_eq!(names.value(2), "");
    }

    /// Any split of the input into chunks decodes the same rows (the scan
    /// resumes where it stopped, quotes and escapes included).
    #[test]
    fn every_chunking_decodes_alike() {
        let mut csv = CopyFormat::csv();
        csv.escape = b'\\';
        let inputs: [(&[u8], CopyFormat); 3] = [
            (b"1\ta\\tb\n2\t\\N\n3\tlast\n", CopyFormat::text()),
            (b"1,\"x, \"\"y\"\"\nz\"\n2,\n3,\"\"\n", CopyFormat::csv()),
            (b"1,\"a\\\"b\"\n2,\"c\\\"\"\n", csv),
        ];
        for (input, format) in inputs {
            let mut whole = decoder(format.clone());
            whole.feed(input).unwrap();
            let (want, n) = whole.finish().unwrap();
            for step in 1..input.len() {
                let mut d = decoder(format.clone());
                for chunk in input.chunks(step) {
                    d.feed(chunk).unwrap();
                }
                let (got, m) = d.finish().unwrap();
                assert_eq!((m, &got), (n, &want), "chunks of {step}");
            }
        }
    }

    #[test]
    fn a_copy_over_its_limit_fails() {
        let mut d = decoder(CopyFormat::text()).with_limit(Some(1 << 16));
        let line = b"1\tsome text for the row\n";
        let mut failed = None;
        for _ in 0..100_000 {
            if let Err(e) = d.feed(line) {
                failed = Some(e);
                break;
            }
        }
        assert_eq!(failed.map(|e| e.kind), Some(CopyErrorKind::TooBig));
        // one endless line too
        let mut d = decoder(CopyFormat::text()).with_limit(Some(1 << 16));
        let e = (0..1000).find_map(|_| d.feed(&[b'x'; 1024]).err());
        assert_eq!(e.map(|e| e.kind), Some(CopyErrorKind::TooBig));
    }

    #[test]
    fn errors_name_line_and_column() {
        let mut f = CopyFormat::csv();
        f.header = true;
        let mut d = decoder(f.clone());
        d.feed(b"id,name\n1,a\nx,b\n").unwrap();
        let e = d.finish().unwrap_err();
        assert!(e.message.contains("line 3, column id"), "{}", e.message);
        let mut d = decoder(f.clone());
        let e = d.feed(b"id,name\n1,a,extra\n").unwrap_err();
        assert!(
            e.message.contains("extra data") && e.message.contains("line 2"),
            "{}",
            e.message
        );
        let mut d = decoder(f);
        let e = d.feed(b"id,name\n1\n").unwrap_err();
        assert!(
            e.message.contains("missing data for column \"name\""),
            "{}",
            e.message
        );
        let mut d = decoder(CopyFormat::text());
        d.feed(b"\\N\tx\n").unwrap();
        let e = d.finish().unwrap_err();
        assert!(e.message.contains("not-null"), "{}", e.message);
    }

    #[test]
    fn end_marker_stops_input() {
        let mut d = decoder(CopyFormat::text());
        d.feed(b"1\ta\n\\.\n2\tb\n").unwrap();
        let (_, rows) = d.finish().unwrap();
        assert_eq!(rows, 1);
    }
}

//! Messages to rows.
//!
//! Every value goes through the text form its column's type reads (the
//! same parser as `COPY` and literals), so a JSON `"2026-01-01 10:00"`
//! becomes a timestamp exactly as `'2026-01-01 10:00'::timestamp` would,
//! and a bad value names its message and column. A message that cannot be
//! decoded is reported with its index; the others are kept.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::ScalarValue;
use serde_json::Value;

use super::spec::{Encode, Format, IncludeKind, SourceSpec};
use crate::catalog::{ColumnDef, RelationDef};
use crate::ingest::coerce;

/// One upstream message.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub key: Option<Vec<u8>>,
    /// `None`: no value (a tombstone).
    pub payload: Option<Vec<u8>>,
    pub partition: Option<String>,
    /// The subject (NATS) or topic (MQTT) it was published to.
    pub subject: Option<String>,
    pub offset: Option<i64>,
    /// Microseconds since the epoch.
    pub timestamp: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where it was upstream, as text (for `source_errors`).
    pub position: String,
}

impl Message {
    pub fn bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len) + self.key.as_ref().map_or(0, Vec::len)
    }
}

/// A message that could not be decoded.
#[derive(Debug, Clone)]
pub struct BadMessage {
    pub index: usize,
    pub error: String,
}

/// A batch of messages as changes.
#[derive(Debug)]
pub struct Decoded {
    /// Rows of the relation's columns: appended (PLAIN) or upserted.
    pub rows: Option<RecordBatch>,
    /// Keys to delete (UPSERT, DEBEZIUM), values of the key columns.
    pub deletes: Vec<Vec<ScalarValue>>,
    pub bad: Vec<BadMessage>,
}

/// Decodes a batch of messages for relation `def`.
pub fn decode(def: &RelationDef, spec: &SourceSpec, messages: &[Message]) -> Decoded {
    let mut d = Decoder::new(def, spec);
    for (i, m) in messages.iter().enumerate() {
        if let Err(e) = d.message(i, m) {
            d.bad.push(BadMessage { index: i, error: e });
        }
    }
    d.finish(def)
}

/// What a message asks of the relation.
enum Change {
    /// Cells in `cells[row]`.
    Row(usize),
    /// Key cells of a deletion, in `deletes[row]`.
    Delete(usize),
}

struct Decoder<'a> {
    spec: &'a SourceSpec,
    columns: &'a [ColumnDef],
    /// The relation columns the payload fills, in order (CSV order).
    data: Vec<usize>,
    key_columns: &'a [usize],
    /// Text cells of each row to store (one vector per row).
    cells: Vec<Vec<Option<String>>>,
    /// Key cells of each deletion.
    deletes: Vec<Vec<Option<String>>>,
    /// The message of each change, in message order.
    changes: Vec<(usize, Change)>,
    bad: Vec<BadMessage>,
    /// `ENCODE AVRO`: the value's schema (or why it cannot be used) and
    /// the key's.
    avro: Option<Result<super::avro::Codec, String>>,
    avro_key: Option<super::avro::Codec>,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(crate::ingest::json::canonical(other)),
    }
}

/// Bytes in `bytea`'s hex input form (`\x01ab`).
pub(super) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(2 + b.len() * 2);
    s.push_str("\\x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

impl<'a> Decoder<'a> {
    fn new(def: &'a RelationDef, spec: &'a SourceSpec) -> Decoder<'a> {
        let data: Vec<usize> = (0..def.columns.len())
            .filter(|&i| {
                !spec
                    .include
                    .iter()
                    .any(|inc| inc.column == def.columns[i].name)
            })
            .collect();
        Decoder {
            spec,
            columns: &def.columns,
            data,
            key_columns: &def.primary_key,
            cells: Vec::new(),
            deletes: Vec::new(),
            changes: Vec::new(),
            bad: Vec::new(),
            avro: (spec.encode == Encode::Avro).then(|| super::avro::Codec::of_spec(spec)),
            avro_key: super::avro::Codec::key_of_spec(spec).ok().flatten(),
        }
    }

    /// A payload as a JSON value (a JSON document, or an Avro datum).
    fn value(&self, bytes: &[u8]) -> Result<Value, String> {
        match &self.avro {
            None => Self::json(bytes),
            Some(Ok(codec)) => codec.decode(bytes),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// A message key as a JSON value (Avro with `key.schema`).
    fn key_value(&self, bytes: &[u8]) -> Result<Value, String> {
        match &self.avro_key {
            Some(codec) => codec.decode(bytes),
            None => Self::json(bytes),
        }
    }

    fn field<'v>(&self, obj: &'v serde_json::Map<String, Value>, col: usize) -> Option<&'v Value> {
        let name = &self.columns[col].name;
        obj.get(name).or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    /// A row's cells from a JSON object (columns it lacks are NULL).
    fn row_from_object(
        &self,
        obj: &serde_json::Map<String, Value>,
        m: &Message,
    ) -> Result<Vec<Option<String>>, String> {
        let mut row = vec![None; self.columns.len()];
        for &c in &self.data {
            row[c] = self.field(obj, c).and_then(text_of);
        }
        self.include(&mut row, m);
        Ok(row)
    }

    fn include(&self, row: &mut [Option<String>], m: &Message) {
        for inc in &self.spec.include {
            let Some(&c) = self
                .columns
                .iter()
                .position(|c| c.name == inc.column)
                .as_ref()
            else {
                continue;
            };
            row[c] = match inc.kind {
                IncludeKind::Key => m.key.as_deref().map(hex),
                IncludeKind::Partition => m.partition.clone(),
                IncludeKind::Subject => m.subject.clone(),
                IncludeKind::Offset => m.offset.map(|o| o.to_string()),
                IncludeKind::Timestamp => m.timestamp.and_then(|us| {
                    chrono::DateTime::from_timestamp_micros(us)
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
                }),
                IncludeKind::Header => match &inc.header {
                    Some(h) => m.headers.iter().find(|(k, _)| k == h).map(|(_, v)| hex(v)),
                    None => {
                        let map: serde_json::Map<String, Value> = m
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    Value::String(String::from_utf8_lossy(v).into_owned()),
                                )
                            })
                            .collect();
                        Some(Value::Object(map).to_string())
                    }
                },
            };
        }
    }

    fn json(bytes: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))
    }

    fn object(v: Value) -> Result<serde_json::Map<String, Value>, String> {
        match v {
            Value::Object(o) => Ok(o),
            other => Err(format!(
                "expected a JSON object, got {}",
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )),
        }
    }

    fn push_row(&mut self, i: usize, row: Vec<Option<String>>) {
        self.changes.push((i, Change::Row(self.cells.len())));
        self.cells.push(row);
    }

    /// The key of a deletion: from the message key (a JSON object of the
    /// key columns, or the bare value of a one-column key), else from an
    /// object holding them.
    fn delete_key(
        &mut self,
        i: usize,
        m: &Message,
        obj: Option<&serde_json::Map<String, Value>>,
    ) -> Result<(), String> {
        let from_obj = |o: &serde_json::Map<String, Value>| -> Vec<Option<String>> {
            self.key_columns
                .iter()
                .map(|&c| self.field(o, c).and_then(text_of))
                .collect()
        };
        let key = match (obj, &m.key) {
            (Some(o), _) => from_obj(o),
            (None, Some(k)) => match self.key_value(k) {
                Ok(Value::Object(o)) => from_obj(&o),
                Ok(v) if self.key_columns.len() == 1 => vec![text_of(&v)],
                _ if self.key_columns.len() == 1 => {
                    vec![Some(String::from_utf8_lossy(k).into_owned())]
                }
                _ => return Err("the message key does not name the key columns".into()),
            },
            (None, None) => return Err("a deletion without a key".into()),
        };
        if key.iter().any(Option::is_none) {
            return Err("a deletion whose key has a null column".into());
        }
        self.changes.push((i, Change::Delete(self.deletes.len())));
        self.deletes.push(key);
        Ok(())
    }

    fn message(&mut self, i: usize, m: &Message) -> Result<(), String> {
        if let Some(p) = &m.payload {
            if let Some(e) = crate::ingest::invalid_text(p)
                .filter(|_| !matches!(self.spec.encode, Encode::Bytes | Encode::Avro))
            {
                return Err(e);
            }
        }
        match (self.spec.format, self.spec.encode) {
            (Format::Plain, Encode::Json | Encode::Avro) => {
                let p = m.payload.as_deref().ok_or("a message without a value")?;
                let obj = Self::object(self.value(p)?)?;
                let row = self.row_from_object(&obj, m)?;
                self.push_row(i, row);
            }
            (Format::Plain, Encode::Csv) => {
                let p = m.payload.as_deref().ok_or("a message without a value")?;
                let text = std::str::from_utf8(p).map_err(|e| e.to_string())?;
                let delimiter = self
                    .spec
                    .encode_options
                    .get("delimiter")
                    .and_then(|d| d.chars().next())
                    .unwrap_or(',');
                let fields = csv_fields(text.trim_end_matches(['\r', '\n']), delimiter)?;
                if fields.len() != self.data.len() {
                    return Err(format!(
                        "expected {} CSV fields, got {}",
                        self.data.len(),
                        fields.len()
                    ));
                }
                let mut row = vec![None; self.columns.len()];
                for (f, &c) in fields.into_iter().zip(&self.data) {
                    row[c] = f;
                }
                self.include(&mut row, m);
                self.push_row(i, row);
            }
            (Format::Plain, Encode::Bytes) => {
                let mut row = vec![None; self.columns.len()];
                row[self.data[0]] = m.payload.as_deref().map(hex);
                self.include(&mut row, m);
                self.push_row(i, row);
            }
            (Format::Upsert, _) => {
                let value = match m.payload.as_deref() {
                    None => None,
                    Some([]) => None,
                    Some(p) if self.avro.is_none() && p.iter().all(u8::is_ascii_whitespace) => None,
                    Some(p) => match self.value(p)? {
                        Value::Null => None,
                        v => Some(Self::object(v)?),
                    },
                };
                match value {
                    None => self.delete_key(i, m, None)?,
                    Some(obj) => {
                        let mut row = self.row_from_object(&obj, m)?;
                        // key columns absent from the value come from the key
                        if self.key_columns.iter().any(|&c| row[c].is_none()) {
                            if let Some(Ok(Value::Object(k))) =
                                m.key.as_deref().map(|k| self.key_value(k))
                            {
                                for &c in self.key_columns {
                                    if row[c].is_none() {
                                        row[c] = self.field(&k, c).and_then(text_of);
                                    }
                                }
                            }
                        }
                        self.push_row(i, row);
                    }
                }
            }
            (Format::Debezium, _) => {
                let Some(p) = m.payload.as_deref() else {
                    return Ok(()); // a tombstone after a delete
                };
                let mut obj = Self::object(self.value(p)?)?;
                if let Some(Value::Object(inner)) = obj.remove("payload") {
                    obj = inner;
                }
                let op = obj
                    .get("op")
                    .and_then(Value::as_str)
                    .ok_or("a Debezium event without \"op\"")?
                    .to_string();
                let part = |name: &str| -> Result<Option<serde_json::Map<String, Value>>, String> {
                    match obj.get(name) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::Object(o)) => Ok(Some(o.clone())),
                        Some(_) => Err(format!("Debezium \"{name}\" is not an object")),
                    }
                };
                match op.as_str() {
                    "c" | "r" | "u" => {
                        let after = part("after")?.ok_or("a Debezium event without \"after\"")?;
                        let row = self.row_from_object(&after, m)?;
                        if let Some(before) = part("before")? {
                            let moved = self
                                .key_columns
                                .iter()
                                .any(|&c| self.field(&before, c).and_then(text_of) != row[c]);
                            if moved {
                                self.delete_key(i, m, Some(&before))?;
                            }
                        }
                        self.push_row(i, row);
                    }
                    "d" => {
                        let before =
                            part("before")?.ok_or("a Debezium delete without \"before\"")?;
                        self.delete_key(i, m, Some(&before))?;
                    }
                    "t" => {
                        return Err("Debezium truncate events are not supported".into());
                    }
                    // (an upstream change the connector could not express)
                    "error" => {
                        return Err(obj
                            .get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("a change that cannot be stored")
                            .to_string());
                    }
                    other => return Err(format!("unknown Debezium op \"{other}\"")),
                }
            }
        }
        Ok(())
    }

    /// Types the text cells; a bad cell makes its message bad (and the
    /// others are typed again without it).
    fn finish(mut self, def: &RelationDef) -> Decoded {
        let schema = def.schema();
        let mut dead = vec![false; self.cells.len()];
        let rows = loop {
            let live: Vec<usize> = (0..self.cells.len()).filter(|&r| !dead[r]).collect();
            if live.is_empty() {
                break None;
            }
            match typed(&self.cells, &live, self.columns) {
                Ok(arrays) => match RecordBatch::try_new(schema.clone(), arrays) {
                    Ok(b) => break Some(b),
                    Err(e) => {
                        for &r in &live {
                            dead[r] = true;
                            self.bad_row(r, e.to_string());
                        }
                        break None;
                    }
                },
                Err((pos, column, e)) => {
                    let r = live[pos];
                    dead[r] = true;
                    let columns = self.columns;
                    let name = &columns[column].name;
                    let msg = format!("column \"{name}\": {e}");
                    self.bad_row(r, msg);
                    // Every other bad cell of that column now, one cell at
                    // a time, so that a batch full of bad messages is
                    // typed again once per column, not once per message.
                    for &r in &live[pos + 1..] {
                        let cell = self.cells[r][column].as_deref();
                        if let Some(e) = cell_error(cell, &columns[column]) {
                            dead[r] = true;
                            let msg = format!("column \"{name}\": {e}");
                            self.bad_row(r, msg);
                        }
                    }
                }
            }
        };
        // Deletions' keys, typed (a bad one makes its message bad).
        let mut deletes = Vec::with_capacity(self.deletes.len());
        let mut delete_ok = vec![true; self.deletes.len()];
        for (d, key) in self.deletes.iter().enumerate() {
            let mut values = Vec::with_capacity(key.len());
            let mut failed = None;
            for (k, &c) in self.key_columns.iter().enumerate() {
                let texts = datafusion::arrow::array::StringArray::from(vec![key[k].clone()]);
                match coerce::from_text(&texts, &self.columns[c])
                    .map_err(|e| e.message)
                    .and_then(|a| ScalarValue::try_from_array(&a, 0).map_err(|e| e.to_string()))
                {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        failed = Some(format!("column \"{}\": {e}", self.columns[c].name));
                        break;
                    }
                }
            }
            match failed {
                None => deletes.push(values),
                Some(e) => {
                    delete_ok[d] = false;
                    deletes.push(vec![]);
                    if let Some((i, _)) = self
                        .changes
                        .iter()
                        .find(|(_, ch)| matches!(ch, Change::Delete(x) if *x == d))
                    {
                        self.bad.push(BadMessage {
                            index: *i,
                            error: e,
                        });
                    }
                }
            }
        }
        // (a keyed table takes PLAIN rows as upserts: one per key too)
        let keyed = self.spec.format != Format::Plain || !self.key_columns.is_empty();
        self.bad.sort_by_key(|b| b.index);
        if !keyed {
            return Decoded {
                rows: rows.filter(|b| b.num_rows() > 0),
                deletes: Vec::new(),
                bad: self.bad,
            };
        }
        // One change per key: the last message's (a row to keep, or a
        // deletion).
        let mut next_row = 0;
        let row_of: Vec<Option<usize>> = (0..self.cells.len())
            .map(|r| {
                (rows.is_some() && !dead[r]).then(|| {
                    next_row += 1;
                    next_row - 1
                })
            })
            .collect();
        let key_arrays: Vec<ArrayRef> = rows
            .iter()
            .flat_map(|b| self.key_columns.iter().map(|&c| b.column(c).clone()))
            .collect();
        let mut last: HashMap<Vec<ScalarValue>, (usize, Option<usize>)> = HashMap::new();
        for (seq, (_, ch)) in self.changes.iter().enumerate() {
            match ch {
                Change::Row(r) => {
                    if let Some(b) = row_of[*r] {
                        let key: Vec<ScalarValue> = key_arrays
                            .iter()
                            .filter_map(|a| ScalarValue::try_from_array(a, b).ok())
                            .collect();
                        last.insert(key, (seq, Some(b)));
                    }
                }
                Change::Delete(d) => {
                    if delete_ok[*d] {
                        last.insert(deletes[*d].clone(), (seq, None));
                    }
                }
            }
        }
        let mut keep = vec![false; rows.as_ref().map_or(0, |b| b.num_rows())];
        let mut dels: Vec<(usize, Vec<ScalarValue>)> = Vec::new();
        for (key, (seq, at)) in last {
            match at {
                Some(b) => keep[b] = true,
                None => dels.push((seq, key)),
            }
        }
        dels.sort_by_key(|(s, _)| *s);
        let rows = rows.and_then(|b| filter_record_batch(&b, &BooleanArray::from(keep)).ok());
        Decoded {
            rows: rows.filter(|b| b.num_rows() > 0),
            deletes: dels.into_iter().map(|(_, k)| k).collect(),
            bad: self.bad,
        }
    }

    fn bad_row(&mut self, r: usize, error: String) {
        if let Some((i, _)) = self
            .changes
            .iter()
            .find(|(_, ch)| matches!(ch, Change::Row(x) if *x == r))
        {
            self.bad.push(BadMessage { index: *i, error });
        }
    }
}

/// Why one cell cannot be stored in `col`, if it cannot.
fn cell_error(cell: Option<&str>, col: &ColumnDef) -> Option<String> {
    if cell.is_none() && !col.nullable {
        return Some(format!(
            "null value in column \"{}\" violates not-null constraint",
            col.name
        ));
    }
    let texts = datafusion::arrow::array::StringArray::from(vec![cell]);
    coerce::from_text(&texts, col).err().map(|e| e.message)
}

/// The typed columns of rows `live`, or the first bad cell: (position in
/// `live`, column, message).
fn typed(
    cells: &[Vec<Option<String>>],
    live: &[usize],
    columns: &[ColumnDef],
) -> Result<Vec<ArrayRef>, (usize, usize, String)> {
    let mut out = Vec::with_capacity(columns.len());
    for (c, col) in columns.iter().enumerate() {
        let mut b = StringBuilder::with_capacity(live.len(), live.len() * 8);
        for &r in live {
            b.append_option(cells[r][c].as_deref());
        }
        let texts = b.finish();
        let arr = coerce::from_text(&texts, col).map_err(|e| (e.row, c, e.message))?;
        if !col.nullable && arr.null_count() > 0 {
            let row = (0..arr.len()).find(|&i| arr.is_null(i)).unwrap_or(0);
            return Err((
                row,
                c,
                format!(
                    "null value in column \"{}\" violates not-null constraint",
                    col.name
                ),
            ));
        }
        out.push(arr);
    }
    Ok(out)
}

/// The fields of one CSV record (quotes as in RFC 4180; an unquoted empty
/// field is NULL, a quoted one the empty string, as `COPY … CSV`).
pub fn csv_fields(line: &str, delimiter: char) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let mut quoted = false;
        if chars.peek() == Some(&'"') {
            quoted = true;
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated CSV quoted field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        loop {
            match chars.peek() {
                None => break,
                Some(&c) if c == delimiter => break,
                Some(_) if quoted => return Err("extra data after a CSV quoted field".into()),
                Some(&c) => {
                    field.push(c);
                    chars.next();
                }
            }
        }
        out.push(if field.is_empty() && !quoted {
            None
        } else {
            Some(field)
        });
        if chars.next().is_none() {
            return Ok(out);
        }
    }
}

/// Splits CSV text into records (newlines inside quotes stay).
pub fn csv_records(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '\n' if !quoted => {
                let rec = text[start..i].trim_end_matches('\r');
                if !rec.is_empty() {
                    out.push(rec);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let rec = text[start..].trim_end_matches('\r');
    if !rec.is_empty() {
        out.push(rec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::RelationKind;
    use crate::connectors::spec::{validate, RawSpec};
    use crate::types::SqlType;

    fn def(kind: RelationKind, pk: Vec<usize>, format: &str, encode: &str) -> RelationDef {
        let mut d = RelationDef {
            id: 1,
            name: "t".into(),
            kind,
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    ty: SqlType::Int8,
                    nullable: pk.is_empty(),
                },
                ColumnDef {
                    name: "name".into(),
                    ty: SqlType::Text,
                    nullable: true,
                },
            ],
            primary_key: pk,
            watermark: None,
            options: Default::default(),
            sql: String::new(),
            query: None,
            depends_on: vec![],
            view_schema: None,
            plan: None,
            owner: "freshet".into(),
            acl: Default::default(),
            comments: Default::default(),
            indexes: vec![],
            source: None,
        };
        let raw = RawSpec {
            options: [("connector".to_string(), "nexmark".to_string())].into(),
            format: Some((format.into(), encode.into(), Default::default())),
            include: vec![],
        };
        let mut spec = validate(
            &RawSpec {
                format: Some(("plain".into(), "json".into(), Default::default())),
                ..raw.clone()
            },
            kind == RelationKind::Table,
            !d.primary_key.is_empty(),
        )
        .unwrap()
        .unwrap();
        spec.format = match format {
            "upsert" => Format::Upsert,
            "debezium" => Format::Debezium,
            _ => Format::Plain,
        };
        spec.encode = match encode {
            "csv" => Encode::Csv,
            _ => Encode::Json,
        };
        d.source = Some(spec);
        d
    }

    fn msg(payload: Option<&str>, key: Option<&str>) -> Message {
        Message {
            payload: payload.map(|p| p.as_bytes().to_vec()),
            key: key.map(|k| k.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn plain_json_names_the_bad_message_and_column() {
        let d = def(RelationKind::Source, vec![], "plain", "json");
        let spec = d.source.clone().unwrap();
        let out = decode(
            &d,
            &spec,
            &[
                msg(Some(r#"{"id": 1, "name": "a"}"#), None),
                msg(Some(r#"{"id": "x"}"#), None),
                msg(Some("{oops"), None),
                msg(Some(r#"{"ID": 3}"#), None),
            ],
        );
        let rows = out.rows.unwrap();
        assert_eq!(rows.num_rows(), 2);
        assert_eq!(out.bad.len(), 2);
        assert_eq!(out.bad[0].index, 1);
        assert!(
            out.bad[0].error.contains("column \"id\""),
            "{}",
            out.bad[0].error
        );
        assert_eq!(out.bad[1].index, 2);
    }

    #[test]
    fn many_bad_cells_in_one_batch() {
        let d = def(RelationKind::Source, vec![], "plain", "json");
        let spec = d.source.clone().unwrap();
        let messages: Vec<Message> = (0..1000)
            .map(|i| {
                if i % 3 == 0 {
                    msg(Some(&format!(r#"{{"id": {i}}}"#)), None)
                } else {
                    msg(Some(&format!(r#"{{"id": "bad{i}"}}"#)), None)
                }
            })
            .collect();
        let out = decode(&d, &spec, &messages);
        assert_eq!(out.rows.unwrap().num_rows(), 334);
        assert_eq!(out.bad.len(), 666);
        assert!(out.bad.iter().all(|b| b.index % 3 != 0));
        assert!(out.bad[5].error.contains("bad8"), "{}", out.bad[5].error);
    }

    #[test]
    fn csv_fields_and_records() {
        assert_eq!(
            csv_fields(r#"1,"a,""b""",,"""#, ',').unwrap(),
            vec![
                Some("1".to_string()),
                Some("a,\"b\"".to_string()),
                None,
                Some(String::new())
            ]
        );
        assert!(csv_fields(r#""x"y"#, ',').is_err());
        assert_eq!(csv_records("a\n\"b\nc\"\r\nd"), vec!["a", "\"b\nc\"", "d"]);
        let d = def(RelationKind::Source, vec![], "plain", "csv");
        let spec = d.source.clone().unwrap();
        let out = decode(&d, &spec, &[msg(Some("5,x"), None), msg(Some("6"), None)]);
        assert_eq!(out.rows.unwrap().num_rows(), 1);
        assert_eq!(out.bad[0].index, 1);
    }

    #[test]
    fn upsert_keeps_the_last_change_per_key() {
        let d = def(RelationKind::Table, vec![0], "upsert", "json");
        let spec = d.source.clone().unwrap();
        let out = decode(
            &d,
            &spec,
            &[
                msg(Some(r#"{"id": 1, "name": "a"}"#), None),
                msg(Some(r#"{"id": 1, "name": "b"}"#), None),
                msg(Some(r#"{"id": 2, "name": "c"}"#), None),
                msg(None, Some("2")),
                msg(None, Some(r#"{"id": 3}"#)),
                msg(Some(r#"{"id": "01", "name": "z"}"#), None),
            ],
        );
        let rows = out.rows.unwrap();
        assert_eq!(rows.num_rows(), 1);
        let names = rows
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::StringArray>()
            .unwrap();
        assert_eq!(names.value(0), "z");
        assert_eq!(
            out.deletes,
            vec![
                vec![ScalarValue::Int64(Some(2))],
                vec![ScalarValue::Int64(Some(3))]
            ]
        );
        assert!(out.bad.is_empty(), "{:?}", out.bad);
    }

    #[test]
    fn debezium_create_update_delete() {
        let d = def(RelationKind::Table, vec![0], "debezium", "json");
        let spec = d.source.clone().unwrap();
        let out = decode(
            &d,
            &spec,
            &[
                msg(
                    Some(r#"{"payload": {"op": "c", "after": {"id": 1, "name": "a"}}}"#),
                    None,
                ),
                msg(
                    Some(r#"{"op": "u", "before": {"id": 1}, "after": {"id": 4, "name": "b"}}"#),
                    None,
                ),
                msg(
                    Some(r#"{"op": "d", "before": {"id": 7, "name": "x"}}"#),
                    None,
                ),
                msg(None, None),
                msg(Some(r#"{"op": "q"}"#), None),
            ],
        );
        assert_eq!(out.rows.unwrap().num_rows(), 1);
        assert_eq!(
            out.deletes,
            vec![
                vec![ScalarValue::Int64(Some(1))],
                vec![ScalarValue::Int64(Some(7))]
            ]
        );
        assert_eq!(out.bad.len(), 1);
        assert_eq!(out.bad[0].index, 4);
    }
}

//! `COPY … TO STDOUT`: rows as lines of PostgreSQL's text or CSV format,
//! one CopyData message per line.
//!
//! Values are first rendered exactly as a text-format DataRow would carry
//! them (the same encoder as query results, so every type reads as in a
//! query), then escaped or quoted for the format.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use pgwire::api::results::FieldInfo;
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;

use crate::ingest::copy::{CopyFormat, CopyFormatKind};

/// The cells of a text-format DataRow (`None` for NULL).
fn cells(row: &DataRow) -> Vec<Option<&[u8]>> {
    let data = &row.data[..];
    let mut out = Vec::with_capacity(row.field_count.max(0) as usize);
    let mut at = 0;
    for _ in 0..row.field_count {
        let Some(len) = data.get(at..at + 4) else {
            break;
        };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at += 4;
        if len < 0 {
            out.push(None);
        } else {
            let end = (at + len as usize).min(data.len());
            out.push(Some(&data[at..end]));
            at = end;
        }
    }
    out
}

/// One line of the format for the given cells.
pub fn line(cells: &[Option<&[u8]>], f: &CopyFormat) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(f.delimiter);
        }
        match (c, f.kind) {
            (None, _) => out.extend_from_slice(f.null.as_bytes()),
            // (binary COPY TO is refused before rows are written)
            (Some(v), CopyFormatKind::Text | CopyFormatKind::Binary) => {
                for &b in v.iter() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' if f.delimiter == b'\t' => out.extend_from_slice(b"\\t"),
                        d if d == f.delimiter => {
                            out.push(b'\\');
                            out.push(d);
                        }
                        other => out.push(other),
                    }
                }
            }
            (Some(v), CopyFormatKind::Csv) => {
                let quote = v.is_empty() && f.null.is_empty()
                    || *v == f.null.as_bytes()
                    || v.iter()
                        .any(|&b| b == f.delimiter || b == f.quote || b == b'\n' || b == b'\r');
                if quote {
                    out.push(f.quote);
                    for &b in v.iter() {
                        if b == f.quote || b == f.escape {
                            out.push(f.escape);
                        }
                        out.push(b);
                    }
                    out.push(f.quote);
                } else {
                    out.extend_from_slice(v);
                }
            }
        }
    }
    out.push(b'\n');
    out
}

/// The header line (CSV `HEADER`): the column names.
pub fn header(fields: &[FieldInfo], f: &CopyFormat) -> Vec<u8> {
    let names: Vec<&[u8]> = fields.iter().map(|c| c.name().as_bytes()).collect();
    let cells: Vec<Option<&[u8]>> = names.into_iter().map(Some).collect();
    line(&cells, f)
}

/// The lines of a batch whose columns were rendered for text output.
pub fn batch_lines(
    fields: Arc<Vec<FieldInfo>>,
    batch: RecordBatch,
    f: &CopyFormat,
) -> Vec<PgWireResult<CopyData>> {
    arrow_pg::datatypes::encode_recordbatch(fields, batch)
        .map(|row| row.map(|r| CopyData::new(Bytes::from(line(&cells(&r), f)))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_csv_lines() {
        let t = CopyFormat::text();
        let cells: Vec<Option<&[u8]>> = vec![Some(b"a\tb\\c\nd"), None, Some(b"")];
        assert_eq!(line(&cells, &t), b"a\\tb\\\\c\\nd\t\\N\t\n".to_vec());
        let c = CopyFormat::csv();
        let cells: Vec<Option<&[u8]>> = vec![
            Some(b"x,y"),
            None,
            Some(b""),
            Some(b"say \"hi\""),
            Some(b"1"),
        ];
        assert_eq!(
            line(&cells, &c),
            b"\"x,y\",,\"\",\"say \"\"hi\"\"\",1\n".to_vec()
        );
    }
}

//! `COPY … TO STDOUT`: rows as lines of PostgreSQL's text or CSV format,
//! one CopyData message per line, or as rows of its binary format.
//!
//! Values are first encoded exactly as a DataRow would carry them (the same
//! encoder as query results, so every type reads as in a query): in text,
//! then escaped or quoted for the format; in binary, each type's send form,
//! which is what a binary COPY row holds after its field count.

use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Sink, SinkExt, Stream, StreamExt};
use pgwire::api::results::FieldInfo;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyOutResponse};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;

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
            // (a binary row is not a line)
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

/// The binary format's header: signature, flags, no header extension.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// One row of the binary format: the field count, then each field as
/// the DataRow holds it (length, -1 for NULL, and the send form).
fn binary_row(row: &DataRow) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + row.data.len());
    out.put_i16(row.field_count);
    out.extend_from_slice(&row.data);
    out.freeze()
}

/// Sends the CopyOutResponse, the rows and CopyDone; answers how many rows
/// went out. An error mid-way ends the copy with the error (no CopyDone),
/// as PostgreSQL does.
pub async fn send<C, S>(
    client: &mut C,
    fields: &[FieldInfo],
    rows: S,
    f: &CopyFormat,
) -> PgWireResult<usize>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    S: Stream<Item = PgWireResult<DataRow>>,
{
    let binary = f.kind == CopyFormatKind::Binary;
    let code = i8::from(binary);
    let response = CopyOutResponse::new(code, fields.len() as i16, vec![code.into(); fields.len()]);
    client
        .send(PgWireBackendMessage::CopyOutResponse(response))
        .await?;
    let data = |b: Bytes| PgWireBackendMessage::CopyData(CopyData::new(b));
    if f.header && !binary {
        client.feed(data(Bytes::from(header(fields, f)))).await?;
    }
    // the binary header travels in the message of the first row (or of the
    // trailer), as PostgreSQL sends it: readers take a message for a row
    let mut prefix = binary.then_some(BINARY_HEADER);
    let mut with_prefix = |b: &[u8]| -> Bytes {
        match prefix.take() {
            Some(p) => [p, b].concat().into(),
            None => Bytes::copy_from_slice(b),
        }
    };
    let mut rows = std::pin::pin!(rows);
    let mut n = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        let bytes = if binary {
            with_prefix(&binary_row(&row))
        } else {
            Bytes::from(line(&cells(&row), f))
        };
        client.feed(data(bytes)).await?;
        n += 1;
    }
    if binary {
        client.feed(data(with_prefix(&[0xff, 0xff]))).await?;
    }
    client
        .send(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(n)
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

//! The byte format of one log entry.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "FLE1"
//! 4       1     kind: 0 = append (rows are insertions),
//!                     1 = change (rows carry `_weight` and `_ref` columns)
//! 5       4     row count, u32 little-endian
//! 9       4     CRC-32 (IEEE) of every byte from offset 13 to the end
//! 13      ...   Arrow IPC stream: the schema message, one record batch, end marker
//! ```
//!
//! The CRC is checked on every read; a mismatch is reported as corruption
//! with the key of the entry, never silently skipped.

use std::io::Cursor;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

use super::StoreError;

const MAGIC: &[u8; 4] = b"FLE1";

/// Rows per log entry at most. sled keeps values inside its B-tree leaves
/// (16 entries a leaf) and rewrites a whole leaf when it consolidates one,
/// so bounded entries keep every write's cost bounded, whatever was written
/// before.
pub const MAX_ENTRY_ROWS: usize = 1024;

/// Zero-copy slices of at most [`MAX_ENTRY_ROWS`] rows.
pub fn chunks(batch: &RecordBatch) -> Vec<RecordBatch> {
    let n = batch.num_rows();
    if n <= MAX_ENTRY_ROWS {
        return vec![batch.clone()];
    }
    (0..n)
        .step_by(MAX_ENTRY_ROWS)
        .map(|start| batch.slice(start, MAX_ENTRY_ROWS.min(n - start)))
        .collect()
}
const HEADER_LEN: usize = 13;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Append = 0,
    Change = 1,
}

/// An encoded log entry, ready to be written.
#[derive(Debug, Clone)]
pub struct EncodedEntry {
    pub rows: usize,
    pub bytes: Vec<u8>,
}

pub fn encode(kind: EntryKind, batch: &RecordBatch) -> Result<EncodedEntry, StoreError> {
    let rows = batch.num_rows();
    let rows_u32 =
        u32::try_from(rows).map_err(|_| StoreError::Encode("entry too large".to_string()))?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + batch.get_array_memory_size() + 256);
    bytes.extend_from_slice(MAGIC);
    bytes.push(kind as u8);
    bytes.extend_from_slice(&rows_u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 4]);
    {
        let mut writer = StreamWriter::try_new(&mut bytes, &batch.schema())
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        writer
            .write(batch)
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
    }
    let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
    bytes[9..13].copy_from_slice(&crc.to_le_bytes());
    Ok(EncodedEntry { rows, bytes })
}

/// A decoded log entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: EntryKind,
    pub batch: RecordBatch,
}

/// Reads only the header: (kind, row count). Checks magic, not the CRC.
pub fn peek(bytes: &[u8], what: &dyn Fn() -> String) -> Result<(EntryKind, usize), StoreError> {
    if bytes.len() < HEADER_LEN || &bytes[0..4] != MAGIC {
        return Err(StoreError::Corrupt(format!("{}: bad header", what())));
    }
    let kind = match bytes[4] {
        0 => EntryKind::Append,
        1 => EntryKind::Change,
        k => return Err(StoreError::Corrupt(format!("{}: unknown kind {k}", what()))),
    };
    let rows = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    Ok((kind, rows))
}

pub fn decode(bytes: &[u8], what: &dyn Fn() -> String) -> Result<Entry, StoreError> {
    let (kind, rows) = peek(bytes, what)?;
    let stored = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
    let actual = crc32fast::hash(&bytes[HEADER_LEN..]);
    if stored != actual {
        return Err(StoreError::Corrupt(format!(
            "{}: checksum mismatch (stored {stored:08x}, computed {actual:08x})",
            what()
        )));
    }
    let reader = StreamReader::try_new(Cursor::new(&bytes[HEADER_LEN..]), None)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", what())))?;
    let mut batches = Vec::with_capacity(1);
    for b in reader {
        batches.push(b.map_err(|e| StoreError::Corrupt(format!("{}: {e}", what())))?);
    }
    let batch = match batches.len() {
        1 => batches.pop().ok_or_else(|| StoreError::Corrupt(what()))?,
        n => {
            return Err(StoreError::Corrupt(format!(
                "{}: expected one batch, found {n}",
                what()
            )))
        }
    };
    if batch.num_rows() != rows {
        return Err(StoreError::Corrupt(format!(
            "{}: header says {rows} rows, batch has {}",
            what(),
            batch.num_rows()
        )));
    }
    Ok(Entry { kind, batch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let e = encode(EntryKind::Change, &batch()).unwrap();
        assert_eq!(e.rows, 3);
        let d = decode(&e.bytes, &|| "test".into()).unwrap();
        assert_eq!(d.kind, EntryKind::Change);
        assert_eq!(d.batch, batch());
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let e = encode(EntryKind::Append, &batch()).unwrap();
        for i in 0..e.bytes.len() {
            if (5..9).contains(&i) {
                // the row count is checked against the decoded batch instead
                let mut bad = e.bytes.clone();
                bad[i] ^= 0x01;
                assert!(decode(&bad, &|| "t".into()).is_err(), "byte {i}");
                continue;
            }
            let mut bad = e.bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, &|| "t".into()).is_err(), "flip at byte {i}");
        }
    }
}

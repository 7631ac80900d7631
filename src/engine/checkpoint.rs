//! The view checkpoint: every view's operator state and contents, with the
//! log offset of every base relation it reflects, written as one sled value
//! (hence atomically).
//!
//! ```text
//! "FCK1"  magic
//! u32     CRC-32 of everything after it
//! u64     number of base relations, then (relation id u64, next offset u64)...
//! u32     number of views, then per view:
//!         u64 id, u8 has-error, [bytes error], bytes circuit state,
//!         bytes contents (Arrow IPC stream); a view in an error state has
//!         an empty circuit state and no rows (a restart rebuilds it)
//! ```
//! (`bytes` = u32 length + data; integers little-endian.)

use std::collections::HashMap;
use std::io::Cursor;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

use super::commit::Committer;
use super::error::{EngineError, Result};
use crate::dataflow::codec::{Reader, Writer};
use crate::store::StoreError;

pub const KEY: &str = "views";
const MAGIC: &[u8; 4] = b"FCK1";

pub struct SavedView {
    pub circuit: Vec<u8>,
    pub contents: Vec<RecordBatch>,
    pub error: Option<String>,
}

pub struct Checkpoint {
    /// Base relation id -> the next offset at checkpoint time.
    pub offsets: HashMap<u64, u64>,
    pub views: HashMap<u64, SavedView>,
}

fn corrupt(m: impl std::fmt::Display) -> EngineError {
    EngineError::Store(StoreError::Corrupt(format!("view checkpoint: {m}")))
}

pub(crate) fn encode(c: &Committer) -> Result<Vec<u8>> {
    let mut w = Writer::default();
    w.u64(c.relations.len() as u64);
    for (id, r) in &c.relations {
        w.u64(*id);
        w.u64(r.next_offset);
    }
    w.u32(c.views.len() as u32);
    for (id, v) in &c.views {
        w.u64(*id);
        let batches = match &v.error {
            // A failed view's state is not kept: a restart rebuilds it from
            // the log (or finds it failing again).
            Some(e) => {
                w.u8(1);
                w.bytes(e.to_string().as_bytes());
                w.bytes(&[]);
                Vec::new()
            }
            None => {
                w.u8(0);
                w.bytes(&v.circuit.checkpoint().map_err(super::view::dataflow)?);
                v.state.contents()?
            }
        };
        let schema = crate::dataflow::relax(&v.def.schema());
        let mut ipc = Vec::new();
        {
            let mut sw = StreamWriter::try_new(&mut ipc, &schema)?;
            for b in &batches {
                let b = RecordBatch::try_new(schema.clone(), b.columns().to_vec())?;
                sw.write(&b)?;
            }
            sw.finish()?;
        }
        w.bytes(&ipc);
    }
    let mut out = Vec::with_capacity(w.buf.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&w.buf).to_le_bytes());
    out.extend_from_slice(&w.buf);
    Ok(out)
}

pub fn decode(bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < 8 || &bytes[0..4] != MAGIC {
        return Err(corrupt("bad header"));
    }
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[8..];
    if crc32fast::hash(body) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader::new(body);
    let e = |x: crate::dataflow::DataflowError| corrupt(x);
    let n = r.u64().map_err(e)?;
    let mut offsets = HashMap::new();
    for _ in 0..n {
        let id = r.u64().map_err(e)?;
        offsets.insert(id, r.u64().map_err(e)?);
    }
    let nv = r.u32().map_err(e)?;
    let mut views = HashMap::new();
    for _ in 0..nv {
        let id = r.u64().map_err(e)?;
        let error = match r.u8().map_err(e)? {
            1 => Some(String::from_utf8_lossy(r.bytes().map_err(e)?).to_string()),
            _ => None,
        };
        let circuit = r.bytes().map_err(e)?.to_vec();
        let ipc = r.bytes().map_err(e)?;
        let reader = StreamReader::try_new(Cursor::new(ipc), None).map_err(corrupt)?;
        let contents = reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        views.insert(
            id,
            SavedView {
                circuit,
                contents,
                error,
            },
        );
    }
    if !r.done() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Checkpoint { offsets, views })
}

//! The in-memory contents of sources and tables, and consistent snapshots of
//! all of them.
//!
//! A relation's rows live in immutable, reference-counted segments of Arrow
//! batches (user columns plus `_offset`). A deletion does not rewrite a batch:
//! it replaces the segment's live mask (copy-on-write of that one segment).
//! A [`DbSnapshot`] is a map of `Arc`s, so taking one for a query is O(number
//! of relations), and writers never block readers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::arrow::error::ArrowError;

use crate::index::{IndexSpec, RowIndex};

/// A segment smaller than this is merged with the next append, so that
/// single-row inserts do not leave one segment per row.
const MERGE_BELOW_ROWS: usize = 1024;

/// Segment size when a relation is compacted as a whole.
const COMPACT_ROWS: usize = 4096;

#[derive(Debug)]
pub struct Segment {
    /// User columns followed by the `_offset` column, offsets ascending.
    batch: RecordBatch,
    /// `None` when every row is live.
    live: Option<BooleanArray>,
    live_count: usize,
    /// The live rows, computed once on first scan.
    visible: OnceLock<RecordBatch>,
}

impl Segment {
    fn new(batch: RecordBatch, live: Option<BooleanArray>) -> Segment {
        let live_count = match &live {
            Some(m) => m.true_count(),
            None => batch.num_rows(),
        };
        Segment {
            batch,
            live,
            live_count,
            visible: OnceLock::new(),
        }
    }

    fn offsets(&self) -> &Int64Array {
        // The last column is `_offset` by construction (see `RelationData::append`).
        self.batch
            .column(self.batch.num_columns() - 1)
            .as_primitive::<Int64Type>()
    }

    fn first_offset(&self) -> i64 {
        self.offsets().value(0)
    }

    fn last_offset(&self) -> i64 {
        let o = self.offsets();
        o.value(o.len() - 1)
    }

    fn is_live(&self, row: usize) -> bool {
        match &self.live {
            Some(m) => m.value(row),
            None => true,
        }
    }

    /// The live rows of this segment (user columns and `_offset`).
    pub fn visible(&self) -> Result<&RecordBatch, ArrowError> {
        if let Some(v) = self.visible.get() {
            return Ok(v);
        }
        let v = match &self.live {
            None => self.batch.clone(),
            Some(mask) => filter_record_batch(&self.batch, mask)?,
        };
        Ok(self.visible.get_or_init(|| v))
    }
}

/// The current rows of one relation.
#[derive(Debug, Clone)]
pub struct RelationData {
    /// User columns plus `_offset`.
    schema: SchemaRef,
    segments: Vec<Arc<Segment>>,
    live_rows: usize,
    /// The live rows by the values of some columns (the primary key's
    /// first, if any), kept in step with every append and retraction.
    indexes: Vec<RowIndex>,
}

impl RelationData {
    pub fn new(schema_with_offset: SchemaRef) -> RelationData {
        RelationData {
            schema: schema_with_offset,
            segments: Vec::new(),
            live_rows: 0,
            indexes: Vec::new(),
        }
    }

    /// Empty, with these (empty) indexes.
    pub fn with_indexes(
        schema_with_offset: SchemaRef,
        specs: Vec<IndexSpec>,
    ) -> Result<RelationData, ArrowError> {
        let mut d = RelationData::new(schema_with_offset);
        d.set_indexes(specs)?;
        Ok(d)
    }

    /// Keeps exactly these indexes: those already here stay as they are,
    /// new ones are built from the live rows.
    pub fn set_indexes(&mut self, specs: Vec<IndexSpec>) -> Result<(), ArrowError> {
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Some(old) = self.indexes.iter().find(|i| i.spec() == &spec) {
                out.push(old.clone());
                continue;
            }
            let mut ix = RowIndex::new(spec, &self.schema)?;
            let offset_col = self.schema.fields().len() - 1;
            for s in &self.segments {
                let b = s.visible()?;
                let offsets: Vec<u64> = b
                    .column(offset_col)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .map(|o| *o as u64)
                    .collect();
                ix.insert_at(b, &offsets)?;
            }
            out.push(ix);
        }
        self.indexes = out;
        Ok(())
    }

    pub fn indexes(&self) -> &[RowIndex] {
        &self.indexes
    }

    /// The primary key's index.
    pub fn primary(&self) -> Option<&RowIndex> {
        self.indexes.first().filter(|i| i.spec().unique)
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The bytes its rows take in memory, retracted ones not yet compacted
    /// away included.
    pub fn memory_bytes(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.batch.get_array_memory_size())
            .sum()
    }

    pub fn live_rows(&self) -> usize {
        self.live_rows
    }

    pub fn segments(&self) -> &[Arc<Segment>] {
        &self.segments
    }

    /// Appends rows (user columns only) whose offsets start at `first_offset`.
    pub fn append(&mut self, user_rows: &RecordBatch, first_offset: u64) -> Result<(), ArrowError> {
        let n = user_rows.num_rows();
        if n == 0 {
            return Ok(());
        }
        let start = first_offset as i64;
        let offsets: ArrayRef = Arc::new(Int64Array::from_iter_values(start..start + n as i64));
        let mut columns = user_rows.columns().to_vec();
        columns.push(offsets);
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        for ix in &mut self.indexes {
            ix.insert(&batch, first_offset)?;
        }
        let merge = matches!(self.segments.last(),
            Some(last) if last.live.is_none() && last.batch.num_rows() < MERGE_BELOW_ROWS);
        if merge {
            if let Some(last) = self.segments.pop() {
                let merged = concat_batches(&self.schema, [&last.batch, &batch])?;
                self.segments.push(Arc::new(Segment::new(merged, None)));
            }
        } else {
            self.segments.push(Arc::new(Segment::new(batch, None)));
        }
        self.live_rows += n;
        Ok(())
    }

    /// Finds a live row by offset: (segment index, row index).
    pub fn locate(&self, offset: u64) -> Option<(usize, usize)> {
        let off = i64::try_from(offset).ok()?;
        let seg = self.segments.partition_point(|s| s.last_offset() < off);
        let s = self.segments.get(seg)?;
        if s.first_offset() > off {
            return None;
        }
        let offsets = s.offsets().values();
        let row = offsets.binary_search(&off).ok()?;
        s.is_live(row).then_some((seg, row))
    }

    /// The user columns of the given live rows, grouped by segment, with
    /// the offsets in the order of the returned rows. `None` if any offset
    /// is not a live row.
    pub fn take(&self, offsets: &[u64]) -> Result<Option<(RecordBatch, Vec<u64>)>, ArrowError> {
        let user_cols: Vec<usize> = (0..self.schema.fields().len() - 1).collect();
        let user_schema = Arc::new(self.schema.project(&user_cols)?);
        let mut by_segment: std::collections::BTreeMap<usize, Vec<(u32, u64)>> =
            std::collections::BTreeMap::new();
        for &o in offsets {
            let Some((seg, row)) = self.locate(o) else {
                return Ok(None);
            };
            by_segment.entry(seg).or_default().push((row as u32, o));
        }
        let mut parts = Vec::with_capacity(by_segment.len());
        let mut order = Vec::with_capacity(offsets.len());
        for (seg, rows) in by_segment {
            let idx = datafusion::arrow::array::UInt32Array::from_iter_values(
                rows.iter().map(|(r, _)| *r),
            );
            order.extend(rows.iter().map(|(_, o)| *o));
            let b = take_record_batch(&self.segments[seg].batch, &idx)?;
            parts.push(b.project(&user_cols)?);
        }
        Ok(Some((concat_batches(&user_schema, &parts)?, order)))
    }

    /// Marks rows dead. Every offset must be live (checked by the caller
    /// with [`RelationData::locate`]).
    pub fn retract(&mut self, offsets: &[u64]) -> Result<(), ArrowError> {
        let mut by_segment: HashMap<usize, Vec<usize>> = HashMap::new();
        for &o in offsets {
            if let Some((seg, row)) = self.locate(o) {
                by_segment.entry(seg).or_default().push(row);
            }
        }
        let mut removed = 0;
        let mut emptied = false;
        let mut compacted = false;
        for (seg, rows) in by_segment {
            let s = &self.segments[seg];
            if !self.indexes.is_empty() {
                let idx = datafusion::arrow::array::UInt32Array::from_iter_values(
                    rows.iter().map(|r| *r as u32),
                );
                let old = take_record_batch(&s.batch, &idx)?;
                let offsets: Vec<u64> = rows.iter().map(|r| s.offsets().value(*r) as u64).collect();
                for ix in &mut self.indexes {
                    ix.remove(&old, &offsets)?;
                }
            }
            let mut mask: Vec<bool> = match &s.live {
                Some(m) => m.iter().map(|v| v.unwrap_or(false)).collect(),
                None => vec![true; s.batch.num_rows()],
            };
            for r in rows {
                if mask[r] {
                    mask[r] = false;
                    removed += 1;
                }
            }
            let mask = BooleanArray::from(mask);
            let live = mask.true_count();
            let new = if live * 2 < s.batch.num_rows() {
                // Mostly dead: compact so scans and memory stay proportional
                // to live rows.
                let b = filter_record_batch(&s.batch, &mask)?;
                compacted = true;
                Segment::new(b, None)
            } else {
                Segment::new(s.batch.clone(), Some(mask))
            };
            emptied |= new.live_count == 0;
            self.segments[seg] = Arc::new(new);
        }
        if emptied {
            self.segments.retain(|s| s.live_count > 0);
        }
        self.live_rows -= removed;
        if self.stored_rows() > 2 * self.live_rows + 2 * MERGE_BELOW_ROWS {
            // More dead rows than live ones: rewrite the live rows into full
            // segments. This happens after as many retractions as there are
            // live rows, so its cost, spread over them, is constant per row.
            self.compact_all()?;
        } else if compacted
            || self.segments.len() * MERGE_BELOW_ROWS > 4 * self.live_rows + 4 * MERGE_BELOW_ROWS
        {
            // Many small segments for the rows they hold (retractions spread
            // over a relation whose rows keep being replaced, as a view's
            // are): merge neighbours so a step touches few segments.
            self.merge_small()?;
        }
        Ok(())
    }

    /// Rows held, live or not.
    fn stored_rows(&self) -> usize {
        self.segments.iter().map(|s| s.batch.num_rows()).sum()
    }

    fn compact_all(&mut self) -> Result<(), ArrowError> {
        let mut out = Vec::new();
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0;
        for s in &self.segments {
            let v = s.visible()?.clone();
            if v.num_rows() == 0 {
                continue;
            }
            pending_rows += v.num_rows();
            pending.push(v);
            if pending_rows >= COMPACT_ROWS {
                let b = concat_batches(&self.schema, &pending)?;
                out.push(Arc::new(Segment::new(b, None)));
                pending.clear();
                pending_rows = 0;
            }
        }
        if !pending.is_empty() {
            let b = concat_batches(&self.schema, &pending)?;
            out.push(Arc::new(Segment::new(b, None)));
        }
        self.segments = out;
        Ok(())
    }

    /// Merges neighbouring small, fully live segments, so that deletions
    /// spread over a relation do not leave it in ever more, ever smaller
    /// segments.
    fn merge_small(&mut self) -> Result<(), ArrowError> {
        let mut out: Vec<Arc<Segment>> = Vec::with_capacity(self.segments.len());
        for s in self.segments.drain(..) {
            if let Some(last) = out.last_mut() {
                // Neighbours whose live rows fit one small segment, and
                // whose stored rows are few enough that rewriting them is
                // cheap, become one fully live segment.
                if last.live_count + s.live_count <= MERGE_BELOW_ROWS
                    && last.batch.num_rows() + s.batch.num_rows() <= 4 * MERGE_BELOW_ROWS
                {
                    let merged = concat_batches(&self.schema, [last.visible()?, s.visible()?])?;
                    *last = Arc::new(Segment::new(merged, None));
                    continue;
                }
            }
            out.push(s);
        }
        self.segments = out;
        Ok(())
    }
}

/// Every relation's contents at one logical time.
#[derive(Debug, Clone, Default)]
pub struct DbSnapshot {
    /// Advances by one with every published commit group.
    pub version: u64,
    pub relations: HashMap<u64, Arc<RelationData>>,
    /// Views whose maintenance failed, with the error.
    pub errors: HashMap<u64, super::error::Failure>,
    /// Sources with a watermark, by name.
    pub watermarks: Arc<Vec<super::watermark::WatermarkStatus>>,
}

impl DbSnapshot {
    pub fn relation(&self, id: u64) -> Option<&Arc<RelationData>> {
        self.relations.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("_offset", DataType::Int64, false),
        ]))
    }

    fn user(vals: Vec<i64>) -> RecordBatch {
        let s = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(s, vec![Arc::new(Int64Array::from(vals))]).unwrap()
    }

    fn live_values(d: &RelationData) -> Vec<(i64, i64)> {
        let mut out = vec![];
        for s in d.segments() {
            let b = s.visible().unwrap();
            let v = b.column(0).as_primitive::<Int64Type>();
            let o = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.push((v.value(i), o.value(i)));
            }
        }
        out
    }

    #[test]
    fn append_retract_locate() {
        let mut d = RelationData::new(schema());
        d.append(&user(vec![10, 11, 12]), 0).unwrap();
        d.append(&user(vec![13]), 3).unwrap();
        assert_eq!(d.segments().len(), 1, "small appends merge");
        assert_eq!(d.live_rows(), 4);
        d.retract(&[1]).unwrap();
        assert_eq!(live_values(&d), vec![(10, 0), (12, 2), (13, 3)]);
        assert!(d.locate(1).is_none());
        assert_eq!(
            d.take(&[3, 0]).unwrap().unwrap(),
            (user(vec![13, 10]), vec![3, 0])
        );
        d.retract(&[0, 2]).unwrap();
        assert_eq!(live_values(&d), vec![(13, 3)]);
        assert_eq!(d.locate(3), Some((0, 0)));
        d.retract(&[3]).unwrap();
        assert_eq!(d.live_rows(), 0);
        assert!(d.segments().is_empty());
    }

    #[test]
    fn large_appends_make_new_segments() {
        let mut d = RelationData::new(schema());
        d.append(&user((0..2000).collect()), 0).unwrap();
        d.append(&user(vec![1]), 2000).unwrap();
        d.append(&user(vec![2]), 2001).unwrap();
        assert_eq!(d.segments().len(), 2);
        assert_eq!(d.locate(2001), Some((1, 1)));
        assert_eq!(d.locate(1999), Some((0, 1999)));
    }
}

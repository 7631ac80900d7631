//! Top-N: `ORDER BY … LIMIT n [OFFSET k]` (per partition, when given one).
//!
//! Every row is kept in order (sort key in Arrow's order-preserving row
//! encoding, then the row itself, so ties are broken the same way every
//! time); the operator remembers which rows it emitted for each partition.
//! A step recomputes the window `[k, k + n)` of the partitions it touched
//! only — walking at most `k + n` rows of each — and emits the difference
//! from what they showed before: deleting a row in the top brings the next
//! one in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

/// An ORDER BY expression and its direction.
pub type SortKey = (Arc<dyn PhysicalExpr>, SortOptions);

/// One encoded key per row of a batch.
pub type RowKeys = Vec<Box<[u8]>>;

/// How an operator partitions and orders its rows (top-N, OVER): the
/// expressions and their order-preserving encodings.
pub struct PartitionOrder {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    order: Vec<SortKey>,
    part_converter: Option<RowConverter>,
    sort_converter: RowConverter,
}

impl PartitionOrder {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<SortKey>,
        input: &datafusion::arrow::datatypes::Schema,
    ) -> Result<PartitionOrder> {
        let part_converter = if partition.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                partition
                    .iter()
                    .map(|e| Ok(SortField::new(e.data_type(input)?)))
                    .collect::<Result<Vec<_>>>()?,
            )?)
        };
        let sort_converter = RowConverter::new(
            order
                .iter()
                .map(|(e, o)| Ok(SortField::new_with_options(e.data_type(input)?, *o)))
                .collect::<Result<Vec<_>>>()?,
        )?;
        Ok(PartitionOrder {
            partition,
            order,
            part_converter,
            sort_converter,
        })
    }

    /// Each row's partition key and sort key, encoded (empty without
    /// PARTITION BY / ORDER BY: one partition, all rows peers).
    pub fn keys(&self, batch: &RecordBatch) -> Result<(RowKeys, RowKeys)> {
        let n = batch.num_rows();
        let encode = |c: Option<&RowConverter>,
                      es: &mut dyn Iterator<Item = &Arc<dyn PhysicalExpr>>|
         -> Result<RowKeys> {
            let cols = es
                .map(|e| Ok(e.evaluate(batch)?.into_array(n)?))
                .collect::<Result<Vec<ArrayRef>>>()?;
            Ok(match c {
                Some(c) if !cols.is_empty() => {
                    let rows = c.convert_columns(&cols)?;
                    (0..n).map(|i| rows.row(i).as_ref().into()).collect()
                }
                _ => vec![Box::default(); n],
            })
        };
        let parts = encode(self.part_converter.as_ref(), &mut self.partition.iter())?;
        let keys = encode(
            Some(&self.sort_converter),
            &mut self.order.iter().map(|(e, _)| e),
        )?;
        Ok((parts, keys))
    }

    /// (PARTITION BY, ORDER BY) as EXPLAIN shows them.
    pub fn text(&self) -> (String, String) {
        let part: Vec<String> = self.partition.iter().map(|e| e.to_string()).collect();
        let order: Vec<String> = self.order.iter().map(sort_key_text).collect();
        (part.join(", "), order.join(", "))
    }
}

/// An ORDER BY key as EXPLAIN shows it.
pub fn sort_key_text((e, o): &SortKey) -> String {
    match (o.descending, o.nulls_first) {
        (false, false) => e.to_string(),
        (false, true) => format!("{e} NULLS FIRST"),
        (true, true) => format!("{e} DESC"),
        (true, false) => format!("{e} DESC NULLS LAST"),
    }
}

type Ordered = BTreeMap<(Box<[u8]>, Box<[u8]>), i64>;

/// Rows shown by one partition: (row, its row number or 0) → multiplicity.
type Shown = HashMap<(Box<[u8]>, i64), i64>;

pub struct TopN {
    keys: PartitionOrder,
    skip: usize,
    fetch: usize,
    schema: SchemaRef,
    row_converter: RowConverter,
    /// partition → (sort key, row) → multiplicity
    parts: HashMap<Box<[u8]>, Ordered>,
    /// partition → rows emitted
    shown: HashMap<Box<[u8]>, Shown>,
    /// Output each row with its number in its partition: the
    /// `row_number() / rank() / dense_rank() OVER (PARTITION BY … ORDER BY …)
    /// <= n` pattern.
    numbering: Numbering,
}

/// Which number a numbered top-N outputs (and counts `fetch` in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    None,
    /// position, 1-based; ties broken by the row
    RowNumber,
    /// 1 + the rows ordered strictly before; peers share it
    Rank,
    /// 1 + the distinct sort keys strictly before
    DenseRank,
}

impl TopN {
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<SortKey>,
        skip: usize,
        fetch: usize,
        schema: SchemaRef,
    ) -> Result<TopN> {
        let keys = PartitionOrder::new(partition, order, schema.as_ref())?;
        Ok(TopN {
            keys,
            skip,
            fetch,
            row_converter: super::row_converter(&schema)?,
            schema: super::relax(&schema),
            parts: HashMap::new(),
            shown: HashMap::new(),
            numbering: Numbering::None,
        })
    }

    /// Appends each row's number; `output` is the input schema plus that
    /// column. With ranks, `fetch` bounds the rank: every peer of the last
    /// row in is in too.
    pub fn numbered(mut self, numbering: Numbering, output: SchemaRef) -> TopN {
        self.numbering = numbering;
        self.schema = super::relax(&output);
        self
    }

    /// The rows in `[skip, skip + fetch)` of a partition, with multiplicity.
    fn window(&self, part: &[u8]) -> Shown {
        let mut out = Shown::new();
        let Some(rows) = self.parts.get(part) else {
            return out;
        };
        let (mut pos, end) = (0usize, self.skip.saturating_add(self.fetch));
        if matches!(self.numbering, Numbering::Rank | Numbering::DenseRank) {
            let (mut number, mut dense) = (0usize, 0usize);
            let mut prev: Option<&[u8]> = None;
            for ((key, row), &n) in rows {
                let n = n.max(0) as usize;
                if prev != Some(&key[..]) {
                    number = pos + 1;
                    dense += 1;
                    prev = Some(key);
                }
                let shown = if self.numbering == Numbering::Rank {
                    number
                } else {
                    dense
                };
                if shown > end {
                    break;
                }
                *out.entry((row.clone(), shown as i64)).or_insert(0) += n as i64;
                pos += n;
            }
            return out;
        }
        for ((_, row), &n) in rows {
            if pos >= end {
                break;
            }
            let n = n.max(0) as usize;
            let from = pos.max(self.skip);
            let to = (pos + n).min(end);
            if to > from {
                if self.numbering == Numbering::RowNumber {
                    for p in from..to {
                        out.insert((row.clone(), p as i64 + 1), 1);
                    }
                } else {
                    *out.entry((row.clone(), 0)).or_insert(0) += (to - from) as i64;
                }
            }
            pos += n;
        }
        out
    }
}

impl Operator for TopN {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let Some(d) = inputs.first().copied().flatten().filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let (parts, keys) = self.keys.keys(&d.batch)?;
        let rows = super::EncodedRows::new(&self.row_converter, &d.batch)?;
        let mut touched: Vec<Box<[u8]>> = Vec::new();
        for (i, &w) in d.weights.values().iter().enumerate() {
            if w == 0 {
                continue;
            }
            let p = parts[i].clone();
            let ordered = self.parts.entry(p.clone()).or_default();
            let id = (keys[i].clone(), rows.row(i).as_ref().into());
            let e = ordered.entry(id).or_insert(0);
            *e += w;
            if *e < 0 {
                return Err(DataflowError::Eval(
                    "top-N input retracted a row it never inserted".into(),
                ));
            }
            if *e == 0 {
                let id = (keys[i].clone(), rows.row(i).as_ref().into());
                ordered.remove(&id);
            }
            if ordered.is_empty() {
                self.parts.remove(&p);
            }
            touched.push(p);
        }
        touched.sort_unstable();
        touched.dedup();
        let mut out_rows: Vec<(Box<[u8]>, i64)> = Vec::new();
        let mut out_w: Vec<i64> = Vec::new();
        for p in touched {
            let new = self.window(&p);
            let old = self.shown.remove(&p).unwrap_or_default();
            for (r, n) in &old {
                let d = new.get(r).copied().unwrap_or(0) - n;
                if d != 0 {
                    out_rows.push(r.clone());
                    out_w.push(d);
                }
            }
            for (r, n) in &new {
                if !old.contains_key(r) {
                    out_rows.push(r.clone());
                    out_w.push(*n);
                }
            }
            if !new.is_empty() {
                self.shown.insert(p, new);
            }
        }
        if out_rows.is_empty() {
            return Ok(None);
        }
        let rows: Vec<&Box<[u8]>> = out_rows.iter().map(|(r, _)| r).collect();
        let mut cols = super::decode_rows(&self.row_converter, &rows)?;
        if self.numbering != Numbering::None {
            let rn: ArrayRef = Arc::new(Int64Array::from_iter_values(
                out_rows.iter().map(|(_, n)| *n),
            ));
            cols.push(rn);
        }
        Ok(Some(Delta::from_columns(&self.schema, cols, out_w)?))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        let (part, order) = self.keys.text();
        format!(
            "TopN{}: order by [{}]{}, skip {}, fetch {}",
            match self.numbering {
                Numbering::None => "",
                Numbering::RowNumber => " (row_number)",
                Numbering::Rank => " (rank)",
                Numbering::DenseRank => " (dense_rank)",
            },
            order,
            if part.is_empty() {
                String::new()
            } else {
                format!(" per [{part}]")
            },
            self.skip,
            self.fetch
        )
    }

    fn state_size(&self) -> StateSize {
        let mut s = StateSize::default();
        for rows in self.parts.values() {
            for (k, r) in rows.keys() {
                s.rows += 1;
                s.bytes += (k.len() + r.len()) as u64 + 24;
            }
        }
        s
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        w.u64(self.parts.len() as u64);
        for (p, rows) in &self.parts {
            w.bytes(p);
            w.u64(rows.len() as u64);
            for ((k, r), n) in rows {
                w.bytes(k);
                w.bytes(r);
                w.i64(*n);
            }
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.parts.clear();
        self.shown.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        for _ in 0..r.u64()? {
            let p: Box<[u8]> = r.bytes()?.into();
            let mut rows = Ordered::new();
            for _ in 0..r.u64()? {
                let k: Box<[u8]> = r.bytes()?.into();
                let row: Box<[u8]> = r.bytes()?.into();
                rows.insert((k, row), r.i64()?);
            }
            self.parts.insert(p, rows);
        }
        if !r.done() {
            return Err(DataflowError::State("trailing bytes in top-N state".into()));
        }
        // what is shown follows from the rows
        let keys: Vec<Box<[u8]>> = self.parts.keys().cloned().collect();
        for p in keys {
            let w = self.window(&p);
            if !w.is_empty() {
                self.shown.insert(p, w);
            }
        }
        Ok(())
    }

    fn preserves_append_only(&self) -> bool {
        false
    }
}

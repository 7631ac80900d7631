//! Indexes: ordered maps from the values of some columns of a relation to
//! the offsets of the live rows holding them.
//!
//! Every relation's rows ([`crate::engine::data::RelationData`]) carry the
//! indexes its definition names: the primary key's (unique; the committer
//! checks keys in it) and those of `CREATE INDEX`. An index is a persistent
//! ordered set of `(key, offset)` ([`imbl::OrdSet`], a B-tree whose nodes
//! are shared between versions), so a snapshot or a transaction's private
//! copy of a relation takes its indexes in O(1), and a write changes them in
//! O(log n) per row.
//!
//! A key is the Arrow row encoding of the indexed columns: the bytes compare
//! as the values do (ascending, NULLs first), and each column's encoding is
//! self-delimiting, so the keys whose first `k` columns equal given values
//! are exactly those that start with those values' encoding. Equality on a
//! prefix of the columns and a range on the next one are therefore one
//! contiguous run of the set ([`KeyBounds`]).
//!
//! Queries use them through [`plan`]: `WHERE` conditions that an index can
//! answer turn a scan into an [`scan::IndexScanExec`].

pub mod ddl;
pub mod plan;
pub mod scan;

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use imbl::OrdSet;

/// What an index covers, as the catalog defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    /// Indices into the relation's columns, in key order.
    pub columns: Vec<usize>,
    /// The primary key's index.
    pub unique: bool,
}

/// Whether values of this type compare in an index as SQL compares them
/// (floats do not: `-0 = 0` and NaN; intervals neither: `'1 day' = '24
/// hours'`). Indexes on other types are refused.
pub fn indexable(ty: &DataType) -> bool {
    use DataType::*;
    matches!(
        ty,
        Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Utf8
            | LargeUtf8
            | Utf8View
            | Binary
            | LargeBinary
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Decimal128(_, _)
    )
}

/// The live rows of one relation, ordered by the values of some columns.
#[derive(Clone)]
pub struct RowIndex {
    spec: Arc<IndexSpec>,
    /// The types of the indexed columns, in key order.
    types: Arc<[DataType]>,
    converter: Arc<RowConverter>,
    entries: OrdSet<(Box<[u8]>, u64)>,
}

impl fmt::Debug for RowIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RowIndex({}, {} rows)",
            self.spec.name,
            self.entries.len()
        )
    }
}

impl RowIndex {
    /// An empty index over `spec.columns` of a relation with this schema.
    pub fn new(spec: IndexSpec, schema: &Schema) -> Result<RowIndex, ArrowError> {
        let types: Vec<DataType> = spec
            .columns
            .iter()
            .map(|&i| {
                schema
                    .fields()
                    .get(i)
                    .map(|f| f.data_type().clone())
                    .ok_or_else(|| {
                        ArrowError::InvalidArgumentError(format!(
                            "index \"{}\" names column {i}, which the relation does not have",
                            spec.name
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect())?;
        Ok(RowIndex {
            spec: Arc::new(spec),
            types: types.into(),
            converter: Arc::new(converter),
            entries: OrdSet::new(),
        })
    }

    pub fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The keys of `batch`'s rows (a batch with the relation's columns,
    /// `_offset` or not after them).
    pub fn keys(&self, batch: &RecordBatch) -> Result<Vec<Box<[u8]>>, ArrowError> {
        let cols: Vec<ArrayRef> = self
            .spec
            .columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = self.converter.convert_columns(&cols)?;
        Ok(rows.iter().map(|r| r.as_ref().into()).collect())
    }

    /// The encoding of values of the first `values.len()` indexed columns
    /// (each already of its column's type): a prefix of the keys that
    /// hold them.
    pub fn encode_prefix(&self, values: &[ScalarValue]) -> Result<Box<[u8]>, ArrowError> {
        if values.is_empty() {
            return Ok(Box::default());
        }
        let fields = self.types[..values.len()]
            .iter()
            .cloned()
            .map(SortField::new)
            .collect();
        let converter = RowConverter::new(fields)?;
        let arrays: Vec<ArrayRef> = values
            .iter()
            .map(|v| v.to_array_of_size(1))
            .collect::<Result<_, _>>()
            .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
        let rows = converter.convert_columns(&arrays)?;
        Ok(rows.row(0).as_ref().into())
    }

    /// The type of the `k`-th indexed column.
    pub fn column_type(&self, k: usize) -> Option<&DataType> {
        self.types.get(k)
    }

    /// Adds rows at consecutive offsets from `first_offset`.
    pub fn insert(&mut self, batch: &RecordBatch, first_offset: u64) -> Result<(), ArrowError> {
        for (i, key) in self.keys(batch)?.into_iter().enumerate() {
            self.entries.insert((key, first_offset + i as u64));
        }
        Ok(())
    }

    /// Adds rows at the given offsets.
    pub fn insert_at(&mut self, batch: &RecordBatch, offsets: &[u64]) -> Result<(), ArrowError> {
        for (key, &o) in self.keys(batch)?.into_iter().zip(offsets) {
            self.entries.insert((key, o));
        }
        Ok(())
    }

    /// Removes rows (their values, at the given offsets).
    pub fn remove(&mut self, batch: &RecordBatch, offsets: &[u64]) -> Result<(), ArrowError> {
        for (key, &o) in self.keys(batch)?.into_iter().zip(offsets) {
            self.entries.remove(&(key, o));
        }
        Ok(())
    }

    /// The offset of some live row whose key is `key`.
    pub fn first(&self, key: &[u8]) -> Option<u64> {
        let from: (Box<[u8]>, u64) = (key.into(), 0);
        self.entries
            .range((Bound::Included(from), Bound::Unbounded))
            .next()
            .filter(|(k, _)| k.as_ref() == key)
            .map(|(_, o)| *o)
    }

    /// The offsets of the live rows within `bounds`, ascending.
    pub fn lookup(&self, bounds: &KeyBounds) -> Vec<u64> {
        let start: &[u8] = match &bounds.lower {
            Some((b, _)) => b,
            None => &bounds.prefix,
        };
        let from: (Box<[u8]>, u64) = (start.into(), 0);
        let mut out = Vec::new();
        for (key, offset) in self
            .entries
            .range((Bound::Included(from), Bound::Unbounded))
        {
            if !key.starts_with(&bounds.prefix) {
                break;
            }
            if let Some((lo, false)) = &bounds.lower {
                if key.starts_with(lo) {
                    continue;
                }
            }
            if let Some((hi, inclusive)) = &bounds.upper {
                if key.starts_with(hi) {
                    if !inclusive {
                        break;
                    }
                } else if key.as_ref() > hi.as_ref() {
                    break;
                }
            }
            out.push(*offset);
        }
        out.sort_unstable();
        out
    }
}

/// A contiguous run of an index: keys starting with `prefix` (equality on
/// the first columns), and within it, on the next column, from `lower` to
/// `upper` (each the encoding of the prefix's values and the bound, with
/// whether the bound itself is in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBounds {
    pub prefix: Box<[u8]>,
    pub lower: Option<(Box<[u8]>, bool)>,
    pub upper: Option<(Box<[u8]>, bool)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    fn batch(a: Vec<Option<i32>>, b: Vec<Option<&str>>) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(a)),
                Arc::new(StringArray::from(b)),
            ],
        )
        .unwrap()
    }

    fn bounds(
        ix: &RowIndex,
        eq: &[ScalarValue],
        lo: Option<(ScalarValue, bool)>,
        hi: Option<(ScalarValue, bool)>,
    ) -> KeyBounds {
        let with = |v: ScalarValue| {
            let mut vals = eq.to_vec();
            vals.push(v);
            ix.encode_prefix(&vals).unwrap()
        };
        KeyBounds {
            prefix: ix.encode_prefix(eq).unwrap(),
            lower: lo.map(|(v, inc)| (with(v), inc)),
            upper: hi.map(|(v, inc)| (with(v), inc)),
        }
    }

    #[test]
    fn prefix_and_ranges() {
        let spec = IndexSpec {
            name: "t_a_b_idx".into(),
            columns: vec![0, 1],
            unique: false,
        };
        let mut ix = RowIndex::new(spec, &schema()).unwrap();
        ix.insert(
            &batch(
                vec![Some(1), Some(2), Some(2), Some(3), None, Some(2)],
                vec![
                    Some("x"),
                    Some("a"),
                    Some("b"),
                    Some("a"),
                    Some("z"),
                    Some("ab"),
                ],
            ),
            10,
        )
        .unwrap();
        let i = |v: i32| ScalarValue::Int32(Some(v));
        let s = |v: &str| ScalarValue::Utf8(Some(v.into()));
        // a = 2
        assert_eq!(
            ix.lookup(&bounds(&ix, &[i(2)], None, None)),
            vec![11, 12, 15]
        );
        // a = 2 AND b > 'a'
        assert_eq!(
            ix.lookup(&bounds(&ix, &[i(2)], Some((s("a"), false)), None)),
            vec![12, 15]
        );
        // a = 2 AND b <= 'ab'
        assert_eq!(
            ix.lookup(&bounds(&ix, &[i(2)], None, Some((s("ab"), true)))),
            vec![11, 15]
        );
        // a >= 2 AND a < 3
        assert_eq!(
            ix.lookup(&bounds(&ix, &[], Some((i(2), true)), Some((i(3), false)))),
            vec![11, 12, 15]
        );
        // a > 1 AND a <= 3
        assert_eq!(
            ix.lookup(&bounds(&ix, &[], Some((i(1), false)), Some((i(3), true)))),
            vec![11, 12, 13, 15]
        );
        // a < 2, NULLs excluded by a lower bound of NULL, exclusive
        assert_eq!(
            ix.lookup(&bounds(
                &ix,
                &[],
                Some((ScalarValue::Int32(None), false)),
                Some((i(2), false))
            )),
            vec![10]
        );
        ix.remove(&batch(vec![Some(2)], vec![Some("b")]), &[12])
            .unwrap();
        assert_eq!(ix.lookup(&bounds(&ix, &[i(2)], None, None)), vec![11, 15]);
        let key = ix.keys(&batch(vec![Some(3)], vec![Some("a")])).unwrap();
        assert_eq!(ix.first(&key[0]), Some(13));
        let missing = ix.keys(&batch(vec![Some(3)], vec![Some("b")])).unwrap();
        assert_eq!(ix.first(&missing[0]), None);
    }
}

//! π: computes output columns from each row. Linear, stateless.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::{Delta, Operator, Result};

pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Project {
        Project {
            exprs,
            schema: super::relax(&schema),
        }
    }
}

impl Operator for Project {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let Some(d) = inputs.first().copied().flatten() else {
            return Ok(None);
        };
        if d.is_empty() {
            return Ok(None);
        }
        let n = d.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.exprs.len());
        for (e, f) in self.exprs.iter().zip(self.schema.fields()) {
            let a = e.evaluate(&d.batch)?.into_array(n)?;
            let a = if a.data_type() == f.data_type() {
                a
            } else {
                datafusion::arrow::compute::cast(&a, f.data_type())?
            };
            columns.push(a);
        }
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Some(Delta {
            batch,
            weights: d.weights.clone(),
        }))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        let input = inputs.first().copied().unwrap_or(&[]);
        self.exprs
            .iter()
            .map(|e| super::watermark::derive(e, input))
            .collect()
    }

    fn explain(&self) -> String {
        let cols: Vec<String> = self
            .exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| format!("{e} AS {}", f.name()))
            .collect();
        format!("Project: {}", cols.join(", "))
    }
}

//! σ: keeps the rows whose predicate is true. Linear, stateless.

use std::sync::Arc;

use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::{DataflowError, Delta, Operator, Result};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Filter {
        Filter {
            predicate,
            schema: super::relax(&schema),
        }
    }
}

impl Operator for Filter {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let Some(d) = inputs.first().copied().flatten() else {
            return Ok(None);
        };
        if d.is_empty() {
            return Ok(None);
        }
        let v = self.predicate.evaluate(&d.batch)?.into_array(d.len())?;
        let mask = v
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataflowError::Eval("filter predicate is not boolean".into()))?;
        let out = d.filter(&super::null_as_false(mask))?;
        Ok((!out.is_empty()).then_some(out))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        // a filter only removes rows
        inputs.first().map(|w| w.to_vec()).unwrap_or_default()
    }

    fn explain(&self) -> String {
        format!("Filter: {}", self.predicate)
    }
}

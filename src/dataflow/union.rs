//! ⊎: UNION ALL, the sum of its inputs. Linear, stateless. (`UNION` is a
//! distinct over this; with no inputs it is the relation that is always
//! empty, which a query with `WHERE false` plans to.)

use datafusion::arrow::datatypes::SchemaRef;

use super::{Delta, Operator, Result};

pub struct Union {
    inputs: usize,
    schema: SchemaRef,
}

impl Union {
    pub fn new(inputs: usize, schema: SchemaRef) -> Union {
        Union {
            inputs,
            schema: super::relax(&schema),
        }
    }
}

impl Operator for Union {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let parts: Vec<Delta> = inputs
            .iter()
            .flatten()
            .filter(|d| !d.is_empty())
            .map(|d| d.with_schema(self.schema.clone()))
            .collect::<Result<_>>()?;
        match parts.len() {
            0 => Ok(None),
            1 => Ok(parts.into_iter().next()),
            _ => Ok(Some(Delta::concat(&self.schema, &parts)?)),
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        super::watermark::least(inputs, self.schema.fields().len())
    }

    fn explain(&self) -> String {
        match self.inputs {
            // (a relation that is always empty: `WHERE false`)
            0 => "Empty".to_string(),
            n => format!("Union: {n} inputs"),
        }
    }
}

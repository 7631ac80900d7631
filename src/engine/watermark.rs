//! Source watermarks: per source with a `WATERMARK FOR ts AS ts - delay`
//! clause, the largest event time seen, the watermark (that time minus the
//! delay, so it never moves backwards), and how many rows arrived with an
//! event time already behind the watermark ("late" rows).
//!
//! Tracked by the committer as rows are appended, in log order, so replaying
//! the log at start-up reproduces the same values.

use datafusion::arrow::array::RecordBatch;

use super::error::Result;
use crate::catalog::RelationDef;

/// One source's watermark state.
#[derive(Debug, Clone)]
pub struct WatermarkTrack {
    column: usize,
    delay_us: i64,
    pub max_event_us: Option<i64>,
    pub late_rows: u64,
}

/// What `freshet_catalog.source_watermarks` shows for a source.
#[derive(Debug, Clone)]
pub struct WatermarkStatus {
    pub source: String,
    pub column: String,
    pub delay_us: i64,
    pub watermark_us: Option<i64>,
    pub max_event_us: Option<i64>,
    pub late_rows: u64,
}

impl WatermarkTrack {
    /// The tracker for a relation, if it declares a watermark.
    pub fn for_relation(def: &RelationDef) -> Option<WatermarkTrack> {
        let wm = def.watermark.as_ref()?;
        let column = def.columns.iter().position(|c| c.name == wm.column)?;
        match crate::sql::ddl::watermark_delay(&wm.column, &wm.expr) {
            Ok(delay_us) => Some(WatermarkTrack {
                column,
                delay_us,
                max_event_us: None,
                late_rows: 0,
            }),
            Err(e) => {
                tracing::warn!(source = %def.name, error = %e, "watermark ignored");
                None
            }
        }
    }

    pub fn watermark_us(&self) -> Option<i64> {
        self.max_event_us.map(|m| m.saturating_sub(self.delay_us))
    }

    /// Takes appended rows into account, in order: counts those behind the
    /// watermark as it stood just before each (the rule views apply when
    /// they drop late rows), and advances the maximum event time.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let ts = crate::dataflow::watermark::micros(batch.column(self.column))
            .map_err(|e| super::error::EngineError::Internal(e.to_string()))?;
        let (_, late) =
            crate::dataflow::watermark::admit_rows(&ts, &mut self.max_event_us, self.delay_us);
        self.late_rows += late;
        Ok(())
    }

    pub fn status(&self, def: &RelationDef) -> WatermarkStatus {
        WatermarkStatus {
            source: def.name.clone(),
            column: def
                .columns
                .get(self.column)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            delay_us: self.delay_us,
            watermark_us: self.watermark_us(),
            max_event_us: self.max_event_us,
            late_rows: self.late_rows,
        }
    }
}

//! Source watermarks: per source with a `WATERMARK FOR ts AS ts - delay`
//! clause, the largest event time seen, the watermark (that time minus the
//! delay, so it never moves backwards), and how many rows arrived with an
//! event time already behind the watermark ("late" rows).
//!
//! Tracked by the committer as rows are appended, in log order, so replaying
//! the log at start-up reproduces the same values.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};

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

    /// Takes appended rows into account: counts those behind the watermark
    /// as it stood before them, then advances the maximum event time.
    pub fn observe(&mut self, batch: &RecordBatch) -> Result<()> {
        let col = batch.column(self.column);
        let col = cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let ts = col.as_primitive::<TimestampMicrosecondType>();
        if let Some(wm) = self.watermark_us() {
            self.late_rows += ts.iter().flatten().filter(|&t| t < wm).count() as u64;
        }
        if let Some(m) = datafusion::arrow::compute::max(ts) {
            self.max_event_us = Some(self.max_event_us.map_or(m, |x| x.max(m)));
        }
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

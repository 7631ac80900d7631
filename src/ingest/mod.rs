//! Input formats: COPY text and CSV, value coercion into column types, jsonb.

pub mod coerce;
pub mod copy;
pub mod json;

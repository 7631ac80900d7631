//! COPY decoding: text, CSV and binary, fed in arbitrary chunks, into columns of
//! every kind; errors are fine, panics are not.
#![no_main]

use std::sync::Arc;

use freshet::catalog::ColumnDef;
use freshet::ingest::copy::{CopyDecoder, CopyFormat};
use freshet::types::SqlType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let columns = vec![
        ColumnDef { name: "i".into(), ty: SqlType::Int8, nullable: true },
        ColumnDef { name: "t".into(), ty: SqlType::Text, nullable: true },
        ColumnDef { name: "ts".into(), ty: SqlType::Timestamp, nullable: true },
        ColumnDef { name: "d".into(), ty: SqlType::Float8, nullable: false },
        ColumnDef { name: "b".into(), ty: SqlType::Bytea, nullable: true },
        ColumnDef { name: "n".into(), ty: SqlType::Numeric { precision: 38, scale: 4 }, nullable: true },
        ColumnDef { name: "iv".into(), ty: SqlType::Interval, nullable: true },
        ColumnDef { name: "j".into(), ty: SqlType::Jsonb, nullable: true },
    ];
    let schema = Arc::new(datafusion_schema(&columns));
    let mut format = match mode & 1 {
        _ if mode & 0x80 != 0 => CopyFormat::binary(),
        0 => CopyFormat::text(),
        _ => CopyFormat::csv(),
    };
    format.header = mode & 2 != 0;
    let positions: Vec<usize> = (0..columns.len()).collect();
    let mut d = CopyDecoder::new("f", format, columns, positions, schema);
    // chunk boundaries from the mode byte: rows and characters split anywhere
    let step = 1 + ((mode & 0x7f) as usize >> 2);
    for chunk in rest.chunks(step) {
        if d.feed(chunk).is_err() {
            return;
        }
    }
    let _ = d.finish();
});

fn datafusion_schema(columns: &[ColumnDef]) -> datafusion::arrow::datatypes::Schema {
    datafusion::arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(|c| c.ty.field(&c.name, c.nullable))
            .collect::<Vec<_>>(),
    )
}

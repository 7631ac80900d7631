//! Input formats: COPY text and CSV, value coercion into column types, jsonb.

pub mod binary;
pub mod coerce;
pub mod copy;
pub mod json;

/// Why `b` is not text as Postgres accepts it (UTF-8 without NUL), in
/// Postgres' words: `invalid byte sequence for encoding "UTF8": 0xff`.
pub fn invalid_text(b: &[u8]) -> Option<String> {
    let (at, n) = match std::str::from_utf8(b) {
        Ok(s) => (s.find('\0')?, 1),
        Err(e) => (
            e.valid_up_to(),
            e.error_len()
                .unwrap_or(b.len() - e.valid_up_to())
                .clamp(1, 4),
        ),
    };
    let bytes: Vec<String> = b[at..(at + n).min(b.len())]
        .iter()
        .map(|x| format!("0x{x:02x}"))
        .collect();
    Some(format!(
        "invalid byte sequence for encoding \"UTF8\": {}",
        bytes.join(" ")
    ))
}

//! jsonb text: validated on input and stored in Postgres' canonical form
//! (object keys ordered by length then bytes, the last duplicate key wins,
//! `", "` and `": "` separators).

use serde_json::Value;

pub fn normalize(text: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(canonical(&v))
}

/// A parsed document in the canonical form.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write(v, &mut out);
    out
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                if let Some(val) = map.get(*k) {
                    write(val, out);
                }
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn canonical_form() {
        assert_eq!(
            normalize(r#"{"bb":1,"a":[true,null,"x"],"c":{"z":1,"y":2}}"#).unwrap(),
            r#"{"a": [true, null, "x"], "c": {"y": 2, "z": 1}, "bb": 1}"#
        );
        assert!(normalize("{bad").is_err());
    }
}

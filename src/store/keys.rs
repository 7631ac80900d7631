//! The whole on-disk key layout, in one place.
//!
//! Freshet keeps everything in sled's default tree, so that one `sled::Batch`
//! can change the catalog, the log and (later) checkpoints atomically. Every
//! key starts with a one-byte tag; integers are big-endian so that sled's
//! byte order is numeric order.
//!
//! ```text
//! tag  rest of key                         value
//! 'm'  name (ASCII)                        meta value (format version, ...)
//! 'c'  relation id (u64 BE)                catalog definition (JSON)
//! 'l'  relation id (u64 BE) offset (u64 BE) log entry (see `entry.rs`), keyed by
//!                                          the offset of its first row
//! 'k'  name (ASCII)                        checkpoint record
//! 'r'  role name (UTF-8)                   role record (JSON: attributes and
//!                                          SCRAM verifier)
//! 'p'  relation id (u64 BE)                a connector's upstream position
//!                                          (JSON), written in the batch of
//!                                          the rows it produced
//! 'e'  relation id (u64 BE) seq (u64 BE)   a message a connector skipped
//!                                          (JSON: position, error, bytes)
//! ```

pub const TAG_META: u8 = b'm';
pub const TAG_CATALOG: u8 = b'c';
pub const TAG_LOG: u8 = b'l';
pub const TAG_CHECKPOINT: u8 = b'k';
pub const TAG_ROLE: u8 = b'r';
pub const TAG_POSITION: u8 = b'p';
pub const TAG_SOURCE_ERROR: u8 = b'e';

/// Bumped whenever the layout or the entry format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
pub const META_FORMAT_VERSION: &str = "format_version";
pub const META_NEXT_RELATION_ID: &str = "next_relation_id";
/// The privileges granted on schema `public` (JSON).
pub const META_SCHEMA_ACL: &str = "schema_acl";

pub fn meta(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_META);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn role(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_ROLE);
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn catalog(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = TAG_CATALOG;
    k[1..9].copy_from_slice(&id.to_be_bytes());
    k
}

pub fn position(rel: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = TAG_POSITION;
    k[1..9].copy_from_slice(&rel.to_be_bytes());
    k
}

pub fn source_error(rel: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = TAG_SOURCE_ERROR;
    k[1..9].copy_from_slice(&rel.to_be_bytes());
    k[9..17].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn source_error_prefix(rel: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = TAG_SOURCE_ERROR;
    k[1..9].copy_from_slice(&rel.to_be_bytes());
    k
}

pub fn catalog_prefix() -> [u8; 1] {
    [TAG_CATALOG]
}

pub fn log(rel: u64, first_offset: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = TAG_LOG;
    k[1..9].copy_from_slice(&rel.to_be_bytes());
    k[9..17].copy_from_slice(&first_offset.to_be_bytes());
    k
}

pub fn log_prefix(rel: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = TAG_LOG;
    k[1..9].copy_from_slice(&rel.to_be_bytes());
    k
}

pub fn log_all_prefix() -> [u8; 1] {
    [TAG_LOG]
}

pub fn checkpoint(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_CHECKPOINT);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Splits a log key into (relation id, first offset).
pub fn parse_log(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() != 17 || key[0] != TAG_LOG {
        return None;
    }
    let rel = u64::from_be_bytes(key[1..9].try_into().ok()?);
    let off = u64::from_be_bytes(key[9..17].try_into().ok()?);
    Some((rel, off))
}

/// Extracts the relation id from a catalog key.
pub fn parse_catalog(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != TAG_CATALOG {
        return None;
    }
    Some(u64::from_be_bytes(key[1..9].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_relation_then_offset() {
        let mut keys = [log(2, 0), log(1, 300), log(1, 2), log(1, 256)];
        keys.sort();
        let parsed: Vec<_> = keys.iter().map(|k| parse_log(k).unwrap()).collect();
        assert_eq!(parsed, vec![(1, 2), (1, 256), (1, 300), (2, 0)]);
    }

    #[test]
    fn catalog_key_round_trips() {
        assert_eq!(parse_catalog(&catalog(77)), Some(77));
        assert_eq!(parse_catalog(&log(1, 1)), None);
    }
}

//! Exactly once from brokers that forget a message once it is
//! acknowledged (RabbitMQ queues, MQTT sessions): they are acknowledged
//! only after our commit, and the crash between our commit and the
//! broker's receiving the acknowledgement is covered by storing, with each
//! batch, the identity of every message it acknowledges. After a restart a
//! message delivered again (flagged as a redelivery) whose identity is in
//! that set is acknowledged and not stored twice.

use std::collections::HashMap;

use serde_json::Value;

/// FNV-1a, 64 bits: a stable hash (the standard library's is not stable
/// across releases, and this one is stored).
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A message's identity: a 64-bit hash (of its id, or of its content).
pub type Identity = u64;

/// The identity of a message with a publisher-given id.
pub fn of_id(id: &str) -> Identity {
    fnv(&[b"m", id.as_bytes()])
}

/// The identities stored before a restart and perhaps never acknowledged
/// (identity → how many such messages).
#[derive(Debug, Default)]
pub struct InDoubt(HashMap<Identity, u32>);

impl InDoubt {
    /// The set a stored position holds: `{"ids": base64 of the identities,
    /// 8 bytes each, little-endian}` (8192 identities: 87 KB), or the
    /// earlier form `{"delivered": ["m:<id>" | "h:<16 hex digits>", …]}`.
    pub fn from_position(position: Option<&Value>) -> InDoubt {
        use base64::Engine as _;
        let packed = position
            .and_then(|p| p.get("ids"))
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .unwrap_or_default();
        let listed = position
            .and_then(|p| p.get("delivered"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| match (s.strip_prefix("h:"), s.strip_prefix("m:")) {
                (Some(h), _) => u64::from_str_radix(h, 16).unwrap_or_else(|_| fnv(&[s.as_bytes()])),
                (_, Some(m)) => of_id(m),
                _ => fnv(&[s.as_bytes()]),
            });
        InDoubt::new(
            packed
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .chain(listed),
        )
    }

    /// The position to store with a batch: its messages' identities and
    /// those still in doubt (they travel on until they come back).
    pub fn position(&self, batch: &[Identity]) -> Value {
        use base64::Engine as _;
        let mut bytes = Vec::with_capacity(8 * batch.len());
        for id in batch.iter().copied().chain(self.remaining()) {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        serde_json::json!({ "ids": base64::engine::general_purpose::STANDARD.encode(bytes) })
    }

    pub fn new(ids: impl Iterator<Item = Identity>) -> InDoubt {
        let mut m = HashMap::new();
        for id in ids {
            *m.entry(id).or_insert(0) += 1;
        }
        InDoubt(m)
    }

    /// Whether a delivery is to be stored: not when it is a redelivery of
    /// a message stored already.
    pub fn admit(&mut self, id: Identity, redelivered: bool) -> bool {
        if !redelivered {
            // requeued messages come first: none of them is still to come
            self.0.clear();
            return true;
        }
        match self.0.get_mut(&id) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.0.remove(&id);
                }
                false
            }
            None => true,
        }
    }

    /// What is still in doubt, each identity as often as it is.
    pub fn remaining(&self) -> impl Iterator<Item = Identity> + '_ {
        self.0
            .iter()
            .flat_map(|(id, n)| std::iter::repeat_n(*id, *n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::InDoubt;

    #[test]
    fn redeliveries_of_stored_messages_are_dropped_once_each() {
        let mut d = InDoubt::new([1, 2, 7, 7].into_iter());
        // a redelivery of something stored: dropped, as often as stored
        assert!(!d.admit(1, true));
        assert!(!d.admit(7, true));
        assert!(!d.admit(7, true));
        // a third identical one was not stored: kept
        assert!(d.admit(7, true));
        // a redelivered message that was never stored: kept
        assert!(d.admit(9, true));
        let left: Vec<u64> = d.remaining().collect();
        assert_eq!(left, [2]);
        // the first new message ends the redeliveries
        assert!(d.admit(3, false));
        assert!(d.admit(2, true));
        assert_eq!(d.remaining().count(), 0);
    }

    #[test]
    fn positions_round_trip_and_read_the_earlier_form() {
        let d = InDoubt::new([5].into_iter());
        let p = d.position(&[1, u64::MAX, 1]);
        let mut back: Vec<u64> = InDoubt::from_position(Some(&p)).remaining().collect();
        back.sort();
        assert_eq!(back, [1, 1, 5, u64::MAX]);
        // 8192 identities: 8 bytes each in base64, not a JSON array
        let big = InDoubt::default().position(&vec![u64::MAX; 8192]);
        assert!(big.to_string().len() < 90_000, "{}", big.to_string().len());
        let old = serde_json::json!({"delivered": ["m:bid-1", "h:00000000000000ff", "h:00000000000000ff"]});
        let mut d = InDoubt::from_position(Some(&old));
        assert!(!d.admit(super::of_id("bid-1"), true));
        assert!(!d.admit(255, true));
        assert!(!d.admit(255, true));
        assert!(d.admit(255, true));
    }

    #[test]
    fn identity_hash_is_stable() {
        // stored in positions: must not change between releases
        assert_eq!(super::fnv(&[b"a", b"b"]), super::fnv(&[b"a", b"b"]));
        assert_ne!(super::fnv(&[b"ab", b""]), super::fnv(&[b"a", b"b"]));
        assert_eq!(super::fnv(&[]), 0xcbf2_9ce4_8422_2325);
    }
}

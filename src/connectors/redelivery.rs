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

/// The identities stored before a restart and perhaps never acknowledged
/// (identity → how many such messages).
#[derive(Debug, Default)]
pub struct InDoubt(HashMap<String, u32>);

impl InDoubt {
    /// The set a stored position holds (`{"delivered": [ids…]}`).
    pub fn from_position(position: Option<&Value>) -> InDoubt {
        InDoubt::new(
            position
                .and_then(|p| p.get("delivered"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        )
    }

    /// The position to store with a batch: its messages' identities and
    /// those still in doubt (they travel on until they come back).
    pub fn position(&self, batch: &[String]) -> Value {
        let mut ids = batch.to_vec();
        ids.extend(self.remaining());
        serde_json::json!({ "delivered": ids })
    }

    pub fn new<'a>(ids: impl Iterator<Item = &'a str>) -> InDoubt {
        let mut m = HashMap::new();
        for id in ids {
            *m.entry(id.to_string()).or_insert(0) += 1;
        }
        InDoubt(m)
    }

    /// Whether a delivery is to be stored: not when it is a redelivery of
    /// a message stored already.
    pub fn admit(&mut self, id: &str, redelivered: bool) -> bool {
        if !redelivered {
            // requeued messages come first: none of them is still to come
            self.0.clear();
            return true;
        }
        match self.0.get_mut(id) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.0.remove(id);
                }
                false
            }
            None => true,
        }
    }

    /// What is still in doubt, each identity as often as it is.
    pub fn remaining(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .flat_map(|(id, n)| std::iter::repeat_n(id.clone(), *n as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::InDoubt;

    #[test]
    fn redeliveries_of_stored_messages_are_dropped_once_each() {
        let mut d = InDoubt::new(["m:1", "m:2", "h:x", "h:x"].into_iter());
        // a redelivery of something stored: dropped, as often as stored
        assert!(!d.admit("m:1", true));
        assert!(!d.admit("h:x", true));
        assert!(!d.admit("h:x", true));
        // a third identical one was not stored: kept
        assert!(d.admit("h:x", true));
        // a redelivered message that was never stored: kept
        assert!(d.admit("m:9", true));
        let mut left: Vec<String> = d.remaining().collect();
        left.sort();
        assert_eq!(left, ["m:2"]);
        // the first new message ends the redeliveries
        assert!(d.admit("m:3", false));
        assert!(d.admit("m:2", true));
        assert_eq!(d.remaining().count(), 0);
    }

    #[test]
    fn identity_hash_is_stable() {
        // stored in positions: must not change between releases
        assert_eq!(super::fnv(&[b"a", b"b"]), super::fnv(&[b"a", b"b"]));
        assert_ne!(super::fnv(&[b"ab", b""]), super::fnv(&[b"a", b"b"]));
        assert_eq!(super::fnv(&[]), 0xcbf2_9ce4_8422_2325);
    }
}

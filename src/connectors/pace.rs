//! What the generators share: a well-mixed hash of a number (their values
//! are functions of the seed and the row or event number) and a pacer
//! that releases rows at a given rate.

use std::time::{Duration, Instant};

/// splitmix64: a well-mixed value of `x`.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Releases `events` rows every `per_ns` nanoseconds, counted from row
/// `from` at the moment it was made (a restart paces from where it
/// resumes). `events == 0`: no pacing.
pub struct Pacer {
    started: Instant,
    from: u64,
    events: u64,
    per_ns: u64,
}

impl Pacer {
    pub fn new(from: u64, events: u64, per_ns: u64) -> Pacer {
        Pacer {
            started: Instant::now(),
            from,
            events,
            per_ns: per_ns.max(1),
        }
    }

    /// Waits until row `next` is due; then the end (exclusive) of the
    /// rows due by now (`u64::MAX` without pacing).
    pub async fn due(&self, next: u64) -> u64 {
        if self.events == 0 {
            return u64::MAX;
        }
        let (events, per) = (self.events as u128, self.per_ns as u128);
        loop {
            let elapsed = self.started.elapsed().as_nanos();
            let due = self.from as u128 + elapsed * events / per + 1;
            if due > next as u128 {
                return u64::try_from(due).unwrap_or(u64::MAX);
            }
            let next_at = (next - self.from) as u128 * per / events;
            let wait = u64::try_from(next_at.saturating_sub(elapsed)).unwrap_or(u64::MAX);
            tokio::time::sleep(Duration::from_nanos(wait.max(100_000))).await;
        }
    }
}

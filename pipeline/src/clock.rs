//! The wall clock, read in one place. Operators never read it (they run on stream time, DESIGN
//! §3); the runtime uses it for record timestamps of what it produces, end-to-end latency,
//! instance announcements and the push sink's freshness gauges.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 if the clock is set before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

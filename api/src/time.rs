//! Timestamps as the Docker API writes them: RFC 3339, UTC, nanoseconds (`2026-11-22T02:58:19.181940078Z`).
//!
//! Times are carried as strings in the API shapes so that Go's zero time (`0001-01-01T00:00:00Z`), which no
//! `SystemTime` can hold, round-trips. Callers pass the current time in; this module never reads a clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Go's zero time, what Docker prints for a time that was never set.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Format a time as RFC 3339 with nanoseconds.
pub fn format(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Format seconds and nanoseconds since the Unix epoch.
pub fn format_unix_nanos(nanos: u128) -> String {
    let secs = (nanos / 1_000_000_000) as u64;
    let sub = (nanos % 1_000_000_000) as u32;
    format(UNIX_EPOCH + Duration::new(secs, sub))
}

/// Parse an RFC 3339 time; `None` for the zero time or anything unparsable.
pub fn parse(s: &str) -> Option<SystemTime> {
    if s.is_empty() || s.starts_with("0001-") {
        return None;
    }
    humantime::parse_rfc3339_weak(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_nanoseconds_and_parses_back() {
        let t = UNIX_EPOCH + Duration::new(1_795_000_000, 181_940_078);
        let s = format(t);
        assert!(s.ends_with(".181940078Z"), "{s}");
        assert_eq!(parse(&s), Some(t));
        assert_eq!(parse(ZERO_TIME), None);
        assert_eq!(parse("garbage"), None);
    }
}

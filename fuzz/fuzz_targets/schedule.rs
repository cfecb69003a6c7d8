//! Cron lines (5 fields or @nicknames) in a few zones, and their next and previous times: no
//! input panics.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use stowage::schedule::{self, Schedule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (zone, line) = text.split_once('|').unwrap_or(("UTC", text));
    let Ok(zone) = schedule::zone(Some(zone)) else {
        return;
    };
    if let Ok(s) = Schedule::parse_in(line, zone) {
        for at in [
            DateTime::<Utc>::UNIX_EPOCH,
            DateTime::parse_from_rfc3339("2026-03-29T00:59:00Z")
                .unwrap()
                .to_utc(),
            DateTime::<Utc>::MAX_UTC,
        ] {
            let _ = s.next_after(at);
            let _ = s.prev_at_or_before(at);
        }
    }
});

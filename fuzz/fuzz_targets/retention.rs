//! Retention labels and spans (`daily=7,within=1y6m`), then the policy applied to a series of
//! times: no input panics or overflows.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use stowage::retention::{self, Policy, Span};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Span::parse(text);
    if let Ok(policy) = Policy::parse_label(text) {
        let _ = policy.to_string();
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let times: Vec<DateTime<Utc>> = data
            .iter()
            .map(|b| now - Duration::hours(i64::from(*b) * 37))
            .collect();
        let decisions = retention::plan(&policy, &times, now);
        assert_eq!(decisions.len(), times.len());
        for extreme in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let _ = retention::plan(&policy, &[extreme], extreme);
        }
    }
});

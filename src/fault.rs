//! Crash points for the fault suite (`tests/faults.rs`), in debug builds only.
//!
//! `STOWAGE_TEST_CRASH_AT=NAME` (or `NAME#N` for the Nth time) makes the process kill itself
//! with SIGKILL when it reaches the point `NAME`: no destructor runs, no buffer is flushed,
//! exactly as `kill -9` from outside, but at a moment a test can name (between the artifact's
//! link and its manifest's rename, say), which no outside timing can hit reliably. In release
//! builds [`point`] is an empty inline function and the variable is never read.

/// A named moment where a crash is interesting.
#[cfg(debug_assertions)]
pub fn point(name: &str) {
    use std::sync::Mutex;
    use std::sync::OnceLock;
    static WANTED: OnceLock<Option<(String, u32)>> = OnceLock::new();
    static HITS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    let wanted = WANTED.get_or_init(|| {
        let text = std::env::var("STOWAGE_TEST_CRASH_AT").ok()?;
        Some(match text.split_once('#') {
            Some((n, k)) => (n.to_string(), k.parse().unwrap_or(1)),
            None => (text, 1),
        })
    });
    let Some((want, nth)) = wanted else {
        return;
    };
    if want != name {
        return;
    }
    let hits = {
        let mut all = HITS.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter_mut().find(|(n, _)| n == name) {
            Some((_, k)) => {
                *k += 1;
                *k
            }
            None => {
                all.push((name.to_string(), 1));
                1
            }
        }
    };
    if hits == *nth {
        eprintln!("stowage: crash point {name}#{hits}: SIGKILL");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        // The signal is on its way; nothing after this point may run.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// A named moment where a crash is interesting (nothing in release builds).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(_name: &str) {}

//! The adaptive zstd level (`compression.level = "auto"`), in the spirit of `zstd --adapt`:
//! the level goes down while compression holds the backup up and up while it does not.
//!
//! Compression holds a backup up in two ways, and the writer thread sees both once per
//! [`WINDOW`] of dump bytes:
//! - **Backlog**: blocks were already queued in the channel when the writer came back for
//!   the next one (the dump waits for the compressor).
//! - **A saturated machine**: the CPUs had almost no idle time over the window
//!   (`/proc/stat`), so every cycle zstd spends is one the database and its dump tool do not
//!   get. This is the usual case on a small host: the dump itself keeps the cores busy.
//!
//! The level moves one step per window, within [`MIN`]..=[`MAX`], so it never swings wildly.
//! Each change starts a new zstd frame at the new level (a file of concatenated frames is
//! standard zstd; every frame carries its own checksum). The raw bytes written at each level
//! are recorded in the manifest.
//!
//! The lowest step is level 1 with a hash table 4× the level's own ([`params`]): on the
//! realistic benchmark data plain level 1 stores 15–16% more than level 3, this about 11%,
//! for the same CPU within the noise (BENCHMARKS.md, "The adaptive level's lowest step"). It
//! keeps `auto` well within 15% of level 3's size on a saturated machine, where it runs at
//! its lowest step.

use std::collections::BTreeMap;

use super::compress::Params;

/// The level an adaptive backup starts at.
pub const START: i32 = 3;
/// The lowest level it goes to.
pub const MIN: i32 = 1;
/// The highest level it goes to: the default level. Higher levels cost several times the
/// CPU for a few percent of size, which a backup window on a busy host cannot afford.
pub const MAX: i32 = 3;
/// log2 of the hash table entries at the lowest step (level 1's own is 13 for large inputs).
pub const MIN_HASH_LOG: u32 = 15;

/// How the adaptive mode compresses at `level`: the level, with a larger hash table at
/// [`MIN`].
pub fn params(level: i32) -> Params {
    Params {
        level,
        hash_log: (level == MIN).then_some(MIN_HASH_LOG),
    }
}

/// Dump bytes between two decisions.
pub const WINDOW: u64 = 16 * 1024 * 1024;
/// Share of blocks that found a backlog, at or above which the level goes down.
const BACKLOG_DOWN: f64 = 0.5;
/// Share of idle CPU time below which the machine counts as saturated.
const IDLE_SATURATED: f64 = 0.10;
/// Share of idle CPU time above which the level may go up again (when there is no backlog).
const IDLE_SPARE: f64 = 0.25;

/// CPU time counters of the whole machine: (idle, total), in clock ticks.
pub type CpuTimes = (u64, u64);

/// Reads the machine's CPU counters from `/proc/stat` (`None` where it cannot be read: the
/// controller then decides by backlog alone).
pub fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

/// Parses `/proc/stat`'s first line: `cpu user nice system idle iowait irq softirq steal …`.
fn parse_cpu_line(line: &str) -> Option<CpuTimes> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    // idle + iowait count as idle.
    Some((values[3] + values[4], values.iter().sum()))
}

/// The controller's state during one backup.
#[derive(Debug)]
pub struct Adapt {
    level: i32,
    window_bytes: u64,
    blocks: u32,
    backlogged: u32,
    cpu_at_start: Option<CpuTimes>,
    used: BTreeMap<i32, u64>,
}

impl Default for Adapt {
    fn default() -> Self {
        Self::new(cpu_times())
    }
}

impl Adapt {
    /// Starts at [`START`], with the CPU counters read now.
    pub fn new(cpu: Option<CpuTimes>) -> Self {
        Self {
            level: START,
            window_bytes: 0,
            blocks: 0,
            backlogged: 0,
            cpu_at_start: cpu,
            used: BTreeMap::new(),
        }
    }

    /// The level to compress at now.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Records one block of `bytes` dump bytes, compressed at the current level, and whether
    /// others were queued behind it. At the end of a window reads the CPU counters (through
    /// `cpu`) and returns the new level when it changes.
    pub fn record(
        &mut self,
        bytes: usize,
        backlog: bool,
        cpu: impl FnOnce() -> Option<CpuTimes>,
    ) -> Option<i32> {
        *self.used.entry(self.level).or_default() += bytes as u64;
        self.window_bytes += bytes as u64;
        self.blocks += 1;
        self.backlogged += u32::from(backlog);
        if self.window_bytes < WINDOW {
            return None;
        }
        let now = cpu();
        let idle = match (self.cpu_at_start, now) {
            (Some((i0, t0)), Some((i1, t1))) if t1 > t0 => {
                Some(i1.saturating_sub(i0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let backlog = f64::from(self.backlogged) / f64::from(self.blocks);
        self.window_bytes = 0;
        self.blocks = 0;
        self.backlogged = 0;
        self.cpu_at_start = now;
        let next = next_level(self.level, backlog, idle);
        (next != self.level).then(|| {
            self.level = next;
            next
        })
    }

    /// Dump bytes per level used, and the level that compressed the most of them.
    pub fn finish(self) -> (BTreeMap<i32, u64>, i32) {
        let main = self
            .used
            .iter()
            .max_by_key(|(level, bytes)| (**bytes, -**level))
            .map_or(self.level, |(level, _)| *level);
        (self.used, main)
    }
}

/// One step: down when there is a backlog or the machine is saturated, up when neither and
/// the machine has CPU to spare, else stay.
fn next_level(level: i32, backlog: f64, idle: Option<f64>) -> i32 {
    let saturated = idle.is_some_and(|i| i < IDLE_SATURATED);
    let spare = idle.is_none_or(|i| i > IDLE_SPARE);
    if backlog >= BACKLOG_DOWN || saturated {
        (level - 1).max(MIN)
    } else if backlog == 0.0 && spare {
        (level + 1).min(MAX)
    } else {
        level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 128 * 1024;

    /// Feeds one window of blocks, `backlogged` of them with a backlog, the machine `idle`
    /// (share) over it; returns the level after it.
    fn window(a: &mut Adapt, backlogged: usize, idle: f64, clock: &mut CpuTimes) -> i32 {
        let blocks = (WINDOW as usize).div_ceil(BLOCK);
        for i in 0..blocks {
            let ticks = 1000;
            let cpu = || {
                clock.0 += (ticks as f64 * idle) as u64;
                clock.1 += ticks;
                Some(*clock)
            };
            if i + 1 == blocks {
                a.record(BLOCK, i < backlogged, cpu);
            } else {
                a.record(BLOCK, i < backlogged, || unreachable!("mid-window"));
            }
        }
        a.level()
    }

    #[test]
    fn goes_down_under_backlog_or_saturation_and_back_up_with_spare_cpu() {
        let mut clock = (0, 0);
        let mut a = Adapt::new(Some(clock));
        assert_eq!(a.level(), START);
        // The compressor keeps up and the machine idles: stays at the top.
        assert_eq!(window(&mut a, 0, 0.5, &mut clock), 3);
        // A backlog: one step down per window, not below MIN.
        assert_eq!(window(&mut a, 100, 0.5, &mut clock), 2);
        assert_eq!(window(&mut a, 100, 0.5, &mut clock), 1);
        assert_eq!(window(&mut a, 100, 0.5, &mut clock), 1);
        // No backlog, but a saturated machine: stays down.
        assert_eq!(window(&mut a, 0, 0.05, &mut clock), 1);
        // Some idle time, not enough to spare: stays.
        assert_eq!(window(&mut a, 0, 0.15, &mut clock), 1);
        // Spare CPU and no backlog: back up, one step at a time.
        assert_eq!(window(&mut a, 0, 0.4, &mut clock), 2);
        assert_eq!(window(&mut a, 0, 0.4, &mut clock), 3);
        let (used, main) = a.finish();
        assert_eq!(used.values().sum::<u64>(), 8 * WINDOW);
        assert_eq!(used[&1], 4 * WINDOW);
        assert_eq!(main, 1);
    }

    #[test]
    fn saturation_alone_lowers_the_level_and_unknown_cpu_decides_by_backlog() {
        let mut clock = (0, 0);
        let mut a = Adapt::new(Some(clock));
        assert_eq!(window(&mut a, 0, 0.02, &mut clock), 2);
        let mut b = Adapt::new(None);
        for _ in 0..(WINDOW as usize / BLOCK) {
            b.record(BLOCK, true, || None);
        }
        assert_eq!(b.level(), 2);
    }

    #[test]
    fn reads_proc_stat_lines() {
        assert_eq!(
            parse_cpu_line("cpu  100 5 50 800 20 1 2 3 0 0"),
            Some((820, 981))
        );
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5"), None);
        assert_eq!(parse_cpu_line("cpu 1 x"), None);
        assert!(cpu_times().is_some(), "/proc/stat reads on Linux");
    }
}

//! Leases: several daemons that see the same targets (an active/standby pair, or two copies
//! started by mistake) back each target up exactly once per scheduled time.
//!
//! Before a scheduled run a daemon claims `(host, target, scheduled time)` by creating a lease
//! object with a conditional create (object_store's `PutMode::Create`: S3's
//! `If-None-Match: *`, GCS's `ifGenerationMatch=0`, Azure's `If-None-Match: *`). The object
//! store is the arbiter: exactly one create of a key succeeds. A lease names its holder and
//! its expiry. The winner runs and then writes `done.json`; a loser skips. A holder that dies
//! mid-run (no `done.json`) is taken over once its lease has expired: the next generation's
//! key (`1.json`, `2.json`, …) is created the same way, so a takeover is also won by exactly
//! one daemon.
//!
//! Keys: `<url path>/<host>/.leases/<target>/<scheduled time>/{0.json,1.json,…,done.json}`.
//! After the create, the lease is read back once after [`SETTLE`]: a server that checks
//! `If-None-Match` before writing rather than atomically (s3s-fs does) can let two creates
//! through when they race; the read-back shows the later writer as the holder, so the earlier
//! one steps back. On S3, GCS, Azure and a `file://` directory the create is atomic and the
//! read-back only confirms it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::storage::{Remote, StorageError};

/// How long a winner waits before reading its lease back.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Lease entries older than this (beyond their expiry) are deleted by the next winner.
const KEEP_DAYS: i64 = 2;

/// `[coordination]`: off unless `storage` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationConfig {
    /// The storage that holds the leases (one of `[storage.NAME]`); unset: no coordination.
    #[serde(default)]
    pub storage: Option<String>,
    /// Seconds a lease lasts; 0: `daemon.backup_timeout` + 120 (a run is aborted before its
    /// lease expires, so a live holder is never taken over).
    #[serde(default)]
    pub lease: u64,
}

impl CoordinationConfig {
    /// The lease's length for a daemon whose runs are cut at `backup_timeout` seconds (0: no
    /// limit, then 6 hours).
    pub fn lease_for(&self, backup_timeout: u64) -> Duration {
        let run = if backup_timeout == 0 {
            6 * 3600
        } else {
            backup_timeout
        };
        Duration::from_secs(if self.lease == 0 {
            run + 120
        } else {
            self.lease
        })
    }
}

/// What a lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Who holds it (see [`holder_id`]).
    pub holder: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// When another daemon may take it over.
    pub expires_at: DateTime<Utc>,
    /// In `done.json`: whether the run succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This daemon runs the scheduled time; `takeover` when an earlier holder's lease expired.
    Won {
        /// Whether an expired lease was taken over.
        takeover: bool,
    },
    /// Another daemon holds a live lease.
    Held(Record),
    /// The scheduled time was already run, by `holder`.
    Done {
        /// Who ran it.
        holder: String,
        /// Whether the run succeeded.
        ok: bool,
    },
}

/// A holder name unique to this process: `<host name>/<pid>/<random>`.
pub fn holder_id(instance: Option<&str>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source");
    let random = u32::from_le_bytes(b);
    match instance {
        Some(i) => format!("{host}/{i}/{}/{random:08x}", std::process::id()),
        None => format!("{host}/{}/{random:08x}", std::process::id()),
    }
}

fn time_key(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn dir(remote: &Remote, target: &str, scheduled: DateTime<Utc>) -> Path {
    remote
        .base()
        .clone()
        .join(remote.host())
        .join(".leases")
        .join(target)
        .join(time_key(scheduled))
}

async fn read(remote: &Remote, key: &Path) -> Result<Record, StorageError> {
    let store = remote.store().await?;
    let bytes = store
        .get(key)
        .await
        .map_err(|e| remote.error("reading the lease", key, e))?
        .bytes()
        .await
        .map_err(|e| remote.error("reading the lease", key, e))?;
    serde_json::from_slice(&bytes).map_err(|e| remote.error("reading the lease", key, e))
}

/// Creates `key` holding `record` unless it exists. `Ok(false)`: it existed.
async fn create(remote: &Remote, key: &Path, record: &Record) -> Result<bool, StorageError> {
    let body = serde_json::to_vec(record).expect("a lease serializes");
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match remote
        .store()
        .await?
        .put_opts(key, PutPayload::from(body), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(e) => Err(remote.error("creating the lease", key, e)),
    }
}

/// Claims `(remote's host, target, scheduled)` for `holder`, with a lease of `length`.
/// A claim by the same holder that already won (a retry of its own run) wins again.
// Long: the protocol's steps in the order they happen (look, decide the generation, create,
// read back); split up, each part would need the others' state.
pub async fn claim(
    remote: &Remote,
    target: &str,
    scheduled: DateTime<Utc>,
    holder: &str,
    length: Duration,
) -> Result<Claim, StorageError> {
    let dir = dir(remote, target, scheduled);
    // A few rounds: each lost create means another daemon moved first; look again.
    for _ in 0..4 {
        let store = remote.store().await?;
        let listed = store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| remote.error("listing leases", &dir, e))?;
        let names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename().map(String::from))
            .collect();
        if names.iter().any(|n| n == "done.json") {
            let done = read(remote, &dir.clone().join("done.json")).await?;
            if done.holder == holder {
                return Ok(Claim::Won { takeover: false });
            }
            return Ok(Claim::Done {
                holder: done.holder,
                ok: done.ok.unwrap_or(false),
            });
        }
        let newest = names
            .iter()
            .filter_map(|n| n.strip_suffix(".json")?.parse::<u32>().ok())
            .max();
        let generation = match newest {
            None => 0,
            Some(g) => {
                let current = read(remote, &dir.clone().join(format!("{g}.json"))).await?;
                if current.holder == holder {
                    return Ok(Claim::Won { takeover: g > 0 });
                }
                if current.expires_at > Utc::now() {
                    return Ok(Claim::Held(current));
                }
                g + 1
            }
        };
        let now = Utc::now();
        let record = Record {
            holder: holder.to_string(),
            taken_at: now,
            expires_at: now + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX),
            ok: None,
        };
        let key = dir.clone().join(format!("{generation}.json"));
        if !create(remote, &key, &record).await? {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let stored = read(remote, &key).await?;
        if stored.holder != holder {
            return Ok(Claim::Held(stored));
        }
        return Ok(Claim::Won {
            takeover: generation > 0,
        });
    }
    let current = Record {
        holder: "another daemon".into(),
        taken_at: Utc::now(),
        expires_at: Utc::now() + chrono::Duration::from_std(length).unwrap_or_default(),
        ok: None,
    };
    Ok(Claim::Held(current))
}

/// Marks the scheduled time as run (`done.json`, naming `holder` and whether it succeeded),
/// whatever the outcome: a failed run alerts through its holder and is retried by it, not by
/// the others. Then deletes this target's lease entries older than [`KEEP_DAYS`] days before
/// `scheduled`.
pub async fn finish(
    remote: &Remote,
    target: &str,
    scheduled: DateTime<Utc>,
    holder: &str,
    ok: bool,
) -> Result<(), StorageError> {
    let dir = dir(remote, target, scheduled);
    let now = Utc::now();
    let record = Record {
        holder: holder.to_string(),
        taken_at: now,
        expires_at: now,
        ok: Some(ok),
    };
    create(remote, &dir.clone().join("done.json"), &record).await?;
    let parent = remote
        .base()
        .clone()
        .join(remote.host())
        .join(".leases")
        .join(target);
    let store = remote.store().await?;
    let listed = store
        .list_with_delimiter(Some(&parent))
        .await
        .map_err(|e| remote.error("listing leases", &parent, e))?;
    let horizon = time_key(scheduled - chrono::Duration::days(KEEP_DAYS));
    for old in listed.common_prefixes {
        if old.filename().is_some_and(|n| *n < *horizon) {
            let objects: Vec<_> = store
                .list(Some(&old))
                .filter_map(|o| async move { o.ok().map(|o| o.location) })
                .collect()
                .await;
            for key in objects {
                if let Err(e) = store.delete(&key).await {
                    tracing::debug!(%key, "old lease not deleted: {e}");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_length_outlasts_the_run_timeout() {
        let c = CoordinationConfig::default();
        assert_eq!(c.lease_for(600), Duration::from_secs(720));
        assert_eq!(c.lease_for(0), Duration::from_secs(6 * 3600 + 120));
        let c = CoordinationConfig {
            lease: 90,
            ..Default::default()
        };
        assert_eq!(c.lease_for(600), Duration::from_secs(90));
    }

    #[tokio::test]
    async fn one_winner_then_a_takeover_after_expiry_then_done() {
        let dir = std::env::temp_dir().join(format!("stowage-lease-{}", std::process::id()));
        let remote = crate::remote::directory_storage(&dir, "h1");
        let at: DateTime<Utc> = "2026-11-24T03:00:00Z".parse().unwrap();
        let long = Duration::from_secs(600);
        let won = claim(&remote, "db", at, "a", long).await.unwrap();
        assert!(
            matches!(
                won,
                Claim::Won {
                    takeover: false,
                    ..
                }
            ),
            "{won:?}"
        );
        // Another daemon loses while the lease lives; the holder itself wins again (a retry).
        let lost = claim(&remote, "db", at, "b", long).await.unwrap();
        assert!(
            matches!(&lost, Claim::Held(r) if r.holder == "a"),
            "{lost:?}"
        );
        let again = claim(&remote, "db", at, "a", long).await.unwrap();
        assert!(matches!(again, Claim::Won { .. }), "{again:?}");
        // A lease that has expired is taken over, by one daemon.
        let other = at + chrono::Duration::minutes(1);
        let short = Duration::ZERO;
        assert!(matches!(
            claim(&remote, "db", other, "a", short).await.unwrap(),
            Claim::Won {
                takeover: false,
                ..
            }
        ));
        let taken = claim(&remote, "db", other, "b", long).await.unwrap();
        assert!(
            matches!(taken, Claim::Won { takeover: true, .. }),
            "{taken:?}"
        );
        let third = claim(&remote, "db", other, "c", long).await.unwrap();
        assert!(
            matches!(&third, Claim::Held(r) if r.holder == "b"),
            "{third:?}"
        );
        // Done: nobody runs it again, and its holder's outcome is told.
        finish(&remote, "db", other, "b", true).await.unwrap();
        let done = claim(&remote, "db", other, "c", long).await.unwrap();
        assert_eq!(
            done,
            Claim::Done {
                holder: "b".into(),
                ok: true
            }
        );
        // Leases live beside, not among, the host's targets.
        assert!(remote.targets().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_keys_sort_by_time() {
        let a = time_key("2026-11-24T09:05:00Z".parse().unwrap());
        let b = time_key("2026-11-24T10:00:00Z".parse().unwrap());
        assert_eq!(a, "20261124T090500Z");
        assert!(a < b);
    }
}

//! What the page shows, gathered per request: the daemon's view of each target, its local
//! artifacts (newest, and sizes over the last backups), its last drill, and whether each
//! storage holds its newest artifact. Storage answers are cached for a minute and bounded
//! by a timeout, so a slow store slows no page for long and loading the page often costs no
//! LIST storm.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::daemon::drills::Drills;
use crate::daemon::status::Status;
use crate::daemon::view::TargetView;
use crate::drill::record::Record;
use crate::local::catalog;
use crate::remote::config::Storages;
use crate::remote::copies;

/// How many backups the size chart shows.
pub const CHART: usize = 30;
/// How long a storage's answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// How long the page waits for a storage.
const ASK_FOR: Duration = Duration::from_secs(5);

/// One artifact as the page shows it.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// File name.
    pub file: String,
    /// Database (or volume) it holds.
    pub database: String,
    /// When its dump started.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub seconds: f64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Whether it is encrypted.
    pub encrypted: bool,
}

/// Whether a storage holds a target's newest artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// It does.
    Held,
    /// It does not (yet): the upload pass sends it.
    Missing,
    /// The storage did not answer.
    Unknown(String),
    /// Nothing local to compare with.
    NoLocal,
}

/// One target on the page.
#[derive(Debug, Clone)]
pub struct Row {
    /// The daemon's view.
    pub view: TargetView,
    /// Its valid local artifacts, oldest first.
    pub artifacts: Vec<Artifact>,
    /// The newest drill record of each database, newest first.
    pub drills: Vec<Record>,
    /// When it is drilled next.
    pub next_drill: Option<DateTime<Utc>>,
    /// Per storage, whether it holds the newest artifact.
    pub copies: Vec<(String, Copy)>,
}

impl Row {
    /// The newest artifact.
    pub fn newest(&self) -> Option<&Artifact> {
        self.artifacts.last()
    }

    /// The last [`CHART`] artifacts' sizes, oldest first.
    pub fn sizes(&self) -> &[Artifact] {
        &self.artifacts[self.artifacts.len().saturating_sub(CHART)..]
    }
}

/// Everything the page reads, shared by its handlers.
pub struct Sources {
    /// The daemon's target status.
    pub status: Arc<Status>,
    /// The drill status.
    pub drills: Arc<Drills>,
    /// Where the artifacts are.
    pub backup_dir: PathBuf,
    /// The storages.
    pub storages: Arc<Storages>,
    /// By storage and newest file: a new backup asks again at once.
    cache: Mutex<HashMap<(String, String), (Instant, Copy)>>,
}

impl Sources {
    /// Sources with an empty cache.
    pub fn new(
        status: Arc<Status>,
        drills: Arc<Drills>,
        backup_dir: PathBuf,
        storages: Arc<Storages>,
    ) -> Self {
        Self {
            status,
            drills,
            backup_dir,
            storages,
            cache: Mutex::default(),
        }
    }

    /// Every target (or the one named), sorted by name.
    pub async fn rows(&self, only: Option<&str>) -> Vec<Row> {
        let mut views = self.status.targets();
        views.retain(|v| only.is_none_or(|o| v.name == o));
        views.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<String> = views.iter().map(|v| v.name.clone()).collect();
        let dir = self.backup_dir.clone();
        let listed = tokio::task::spawn_blocking(move || catalog::list(&dir, &names))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut artifacts: HashMap<String, Vec<Artifact>> = HashMap::new();
        for l in &listed {
            if let Ok(m) = l.valid() {
                artifacts
                    .entry(l.target.clone())
                    .or_default()
                    .push(Artifact {
                        file: m.stored.file.clone(),
                        database: m.database.clone(),
                        at: m.started_at,
                        seconds: (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0,
                        bytes: m.stored.bytes,
                        encrypted: m.stored.encrypted,
                    });
            }
        }
        let drills: HashMap<String, _> = self
            .drills
            .views()
            .into_iter()
            .map(|d| (d.target.clone(), d))
            .collect();
        let rows = views.into_iter().map(|view| {
            let mut list = artifacts.remove(&view.name).unwrap_or_default();
            list.sort_by_key(|a| a.at);
            let drill = drills.get(&view.name);
            async move {
                let copies = self.copies(&view, list.last()).await;
                Row {
                    drills: drill.map(|d| d.last.clone()).unwrap_or_default(),
                    next_drill: drill.and_then(|d| d.next_drill),
                    view,
                    artifacts: list,
                    copies,
                }
            }
        });
        join_all(rows).await
    }

    /// Whether each of the target's storages holds `newest`.
    async fn copies(&self, view: &TargetView, newest: Option<&Artifact>) -> Vec<(String, Copy)> {
        let asks = view.storages.iter().map(|name| async move {
            let Some(newest) = newest else {
                return (name.clone(), Copy::NoLocal);
            };
            let key = (name.clone(), newest.file.clone());
            if let Some((at, copy)) = self.cache_get(&key)
                && at.elapsed() < CACHE_FOR
            {
                return (name.clone(), copy);
            }
            let copy = match self.storages.get(name) {
                None => Copy::Unknown("not configured".into()),
                Some(remote) => {
                    match tokio::time::timeout(ASK_FOR, copies::held(remote, &view.name)).await {
                        Ok(Ok(held)) if held.has(&newest.file) => Copy::Held,
                        Ok(Ok(_)) => Copy::Missing,
                        Ok(Err(e)) => Copy::Unknown(crate::error_text::one_line(&e)),
                        Err(_) => {
                            Copy::Unknown(format!("no answer within {} s", ASK_FOR.as_secs()))
                        }
                    }
                }
            };
            self.cache_put(key, copy.clone());
            (name.clone(), copy)
        });
        join_all(asks).await
    }

    fn cache_get(&self, key: &(String, String)) -> Option<(Instant, Copy)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).cloned()
    }

    fn cache_put(&self, key: (String, String), copy: Copy) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        cache.insert(key, (Instant::now(), copy));
    }
}

//! Leases before scheduled runs (config `[coordination]`): the daemon side of
//! [`crate::remote::lease`].
//!
//! A daemon that wins a scheduled time's lease runs it and then marks it done. One that loses
//! does not run it; it keeps the target's slot and looks at the lease every few seconds until
//! the holder marks it done (a success counts against staleness here too, so a standby does
//! not raise stale alerts while the active daemon works) or the lease expires, when it takes
//! the run over. It gives up when the target's next scheduled time would come first: that run
//! is claimed afresh. A storage that cannot be asked does not stop a backup: the run goes
//! ahead, since a double backup is better than none.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::status::Status;
use crate::plan::Target;
use crate::remote::lease::{self, Claim, CoordinationConfig};
use crate::remote::storage::Remote;

/// Leases in one storage, held in this process's name.
pub struct Coordination {
    remote: Arc<Remote>,
    holder: String,
    length: Duration,
}

/// A won lease, to be marked done after the run.
pub struct Ticket {
    scheduled: DateTime<Utc>,
}

impl Coordination {
    /// Coordination in `storages`' `config.storage`, if set (the name is checked with the
    /// configuration).
    pub fn new(
        job: &crate::job::Context,
        config: &CoordinationConfig,
        backup_timeout: u64,
    ) -> Option<Self> {
        let remote = job.storages.get(config.storage.as_deref()?)?.clone();
        let holder = lease::holder_id(job.instance.as_deref());
        let length = config.lease_for(backup_timeout);
        tracing::info!(storage = %remote.name, host = remote.host(), holder, lease_seconds = length.as_secs(), "coordination on: scheduled runs are claimed with a lease");
        Some(Self {
            remote,
            holder,
            length,
        })
    }

    /// How often a waiting daemon looks at a lease held by another.
    fn poll(&self) -> Duration {
        (self.length / 10).clamp(Duration::from_secs(2), Duration::from_secs(30))
    }

    /// Claims `target`'s run for `scheduled`. `Some`: run it (and call [`Self::finish`]).
    pub async fn claim(
        &self,
        target: &Target,
        scheduled: DateTime<Utc>,
        status: &Status,
    ) -> Option<Ticket> {
        let name = target.name.as_str();
        let count = |result: &str| {
            status
                .metrics
                .leases
                .with_label_values(&[name, result])
                .inc()
        };
        let give_up = target.next_run(scheduled);
        let mut told = false;
        loop {
            let claim = lease::claim(&self.remote, name, scheduled, &self.holder, self.length);
            match claim.await {
                Err(e) => {
                    count("error");
                    tracing::error!(target = name, scheduled = %scheduled.to_rfc3339(), "cannot claim the lease: {}; backing up anyway (a double backup is better than none)", crate::error_text::one_line(&e));
                    return Some(Ticket { scheduled });
                }
                Ok(Claim::Won { takeover, .. }) => {
                    count(if takeover { "takeover" } else { "won" });
                    if takeover {
                        tracing::warn!(target = name, scheduled = %scheduled.to_rfc3339(), "the lease's holder did not finish before its lease expired: taking the run over");
                    } else {
                        tracing::info!(target = name, scheduled = %scheduled.to_rfc3339(), "lease won: this daemon runs it");
                    }
                    return Some(Ticket { scheduled });
                }
                Ok(Claim::Done { holder, ok }) => {
                    if !told {
                        count("skipped");
                    }
                    tracing::info!(target = name, scheduled = %scheduled.to_rfc3339(), holder, ok, "run by another daemon; skipped here");
                    if ok {
                        status.covered(name, Utc::now());
                    }
                    return None;
                }
                Ok(Claim::Held(record)) => {
                    if !told {
                        told = true;
                        count("skipped");
                        tracing::info!(target = name, scheduled = %scheduled.to_rfc3339(), holder = record.holder, expires = %record.expires_at.to_rfc3339(), "another daemon holds the lease: skipped here; waiting for it to finish, taking over if its lease expires");
                    }
                    let now = Utc::now();
                    let expiry = record.expires_at + chrono::Duration::seconds(1);
                    let wake = (now + chrono::Duration::from_std(self.poll()).unwrap_or_default())
                        .min(expiry);
                    if give_up.is_some_and(|next| wake >= next) {
                        tracing::info!(target = name, scheduled = %scheduled.to_rfc3339(), "the next scheduled run comes before the lease's end: not waiting for this one");
                        return None;
                    }
                    tokio::time::sleep((wake - now).to_std().unwrap_or_default()).await;
                }
            }
        }
    }

    /// Marks the run done, with its outcome.
    pub async fn finish(&self, target: &str, ticket: Ticket, ok: bool) {
        if let Err(e) =
            lease::finish(&self.remote, target, ticket.scheduled, &self.holder, ok).await
        {
            tracing::warn!(
                target,
                "cannot mark the run done in the lease storage: {}; other daemons take it over when the lease expires",
                crate::error_text::one_line(&e)
            );
        }
    }
}

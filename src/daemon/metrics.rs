//! Prometheus metrics: what an operator needs to alert on, with bounded labels.
//!
//! Labels are only target names (as many as labelled containers), storage names (from
//! config), a fixed set of failure reason classes and fixed result words. Error text is never
//! a label value: it lives in the logs and the alerts. A removed target's series are removed.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::remote::replicate::Report;

/// Every reason class a failure can have (the values of the `reason` label).
pub const REASONS: &[&str] = &[
    "not_running",
    "docker",
    "credentials",
    "helper",
    "hook",
    "stop",
    "dump_failed",
    "dump_error",
    "incomplete",
    "write",
    "timeout",
    "upload",
    "disk_space",
];

/// The metrics of one stowage process.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Unix time of each target's last successful backup.
    pub last_success: GaugeVec,
    /// 1 if the target's last backup succeeded, 0 if it failed.
    pub last_result: GaugeVec,
    /// Backup durations.
    pub duration: HistogramVec,
    /// Raw dump bytes of the last successful backup.
    pub raw_bytes: GaugeVec,
    /// Stored (compressed, maybe encrypted) bytes of the last successful backup.
    pub stored_bytes: GaugeVec,
    /// Failed backups by reason class.
    pub failures: IntCounterVec,
    /// Unix time of each target's next scheduled run.
    pub next_run: GaugeVec,
    /// Backups running now.
    pub running: IntGauge,
    /// Targets planned.
    pub targets: IntGauge,
    /// Uploads by storage and result (`ok`, `failed`).
    pub uploads: IntCounterVec,
    /// Artifacts deleted by retention, by location (`local` or a storage name).
    pub retention_deleted: IntCounterVec,
    /// Retention passes that failed, by location.
    pub retention_errors: IntCounterVec,
    /// Alerts that could not be delivered, by channel kind ([`super::alerts::CHANNEL_KINDS`]).
    pub alert_failures: IntCounterVec,
    /// 1 while the Docker engine answers.
    pub docker_up: IntGauge,
    /// 1 if the storage answered its last health check, 0 if not, by storage.
    pub storage_up: GaugeVec,
    /// Bytes free in the backup directory's filesystem.
    pub free_bytes: IntGauge,
    /// Unix time of each target's last passed restore drill.
    pub drill_last_success: GaugeVec,
    /// 1 if the target's last restore drill passed, 0 if it failed.
    pub drill_last_result: GaugeVec,
    /// Failed restore drills, by target.
    pub drill_failures: IntCounterVec,
    /// How long each target's last restore drill took.
    pub drill_duration: GaugeVec,
    /// Backups much smaller than the previous one, by target.
    pub shrinks: IntCounterVec,
    /// How long the target's containers were stopped during its last backup (stowage.stop).
    pub stopped_seconds: GaugeVec,
    /// Lease claims before scheduled runs, by target and result (`won`, `takeover`,
    /// `skipped`, `error`).
    pub leases: IntCounterVec,
}

/// The values of `stowage_lease_total`'s `result` label.
pub const LEASE_RESULTS: [&str; 4] = ["won", "takeover", "skipped", "error"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    // Long: one definition per metric, read top to bottom; splitting it would part names from
    // their help texts.
    pub fn new() -> Self {
        let registry = Registry::new();
        let register = |metric: Box<dyn prometheus::core::Collector>| {
            registry.register(metric).expect("unique metric");
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(Box::new(c.clone()));
            c
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            register(Box::new(g.clone()));
            g
        };
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "stowage_backup_duration_seconds",
                "Duration of backups (dump, compression, write), by target.",
            )
            .buckets(vec![
                1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0,
            ]),
            &["target"],
        )
        .expect("valid metric");
        register(Box::new(duration.clone()));
        let build = Gauge::with_opts(
            Opts::new(
                "stowage_build_info",
                "Always 1; the labels describe the build.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1.0);
        register(Box::new(build));
        let m = Self {
            last_success: gauge(
                "stowage_backup_last_success_timestamp_seconds",
                "Unix time of the target's last successful backup.",
                &["target"],
            ),
            last_result: gauge(
                "stowage_backup_last_result",
                "1 if the target's last backup succeeded, 0 if it failed.",
                &["target"],
            ),
            duration,
            raw_bytes: gauge(
                "stowage_backup_raw_bytes",
                "Size of the raw dump of the target's last successful backup.",
                &["target"],
            ),
            stored_bytes: gauge(
                "stowage_backup_stored_bytes",
                "Size of the stored artifact of the target's last successful backup.",
                &["target"],
            ),
            failures: counter(
                "stowage_backup_failures_total",
                "Failed backups, by target and reason class.",
                &["target", "reason"],
            ),
            next_run: gauge(
                "stowage_backup_next_run_timestamp_seconds",
                "Unix time of the target's next scheduled backup.",
                &["target"],
            ),
            running: int_gauge("stowage_backups_running", "Backups running now."),
            targets: int_gauge(
                "stowage_targets",
                "Targets planned from labelled containers.",
            ),
            uploads: counter(
                "stowage_uploads_total",
                "Artifact uploads, by storage and result (ok, failed).",
                &["storage", "result"],
            ),
            retention_deleted: counter(
                "stowage_retention_deleted_total",
                "Artifacts deleted by retention, by location (local or a storage name).",
                &["location"],
            ),
            retention_errors: counter(
                "stowage_retention_errors_total",
                "Retention passes that failed, by location.",
                &["location"],
            ),
            alert_failures: counter(
                "stowage_alert_delivery_failures_total",
                "Alerts that could not be delivered, by channel kind (webhook, email, ping, ntfy, gotify, telegram, matrix, mqtt, pushover).",
                &["channel"],
            ),
            docker_up: int_gauge(
                "stowage_docker_up",
                "1 while the Docker engine answers, 0 while it does not.",
            ),
            free_bytes: int_gauge(
                "stowage_backup_dir_free_bytes",
                "Bytes free (for stowage) in the backup directory's filesystem.",
            ),
            storage_up: gauge(
                "stowage_storage_up",
                "1 if the storage answered its last health check (a LIST), 0 if not.",
                &["storage"],
            ),
            drill_last_success: gauge(
                "stowage_drill_last_success_timestamp_seconds",
                "Unix time of the target's last passed restore drill (its newest artifact restored and matched).",
                &["target"],
            ),
            drill_last_result: gauge(
                "stowage_drill_last_result",
                "1 if the target's last restore drill passed, 0 if it failed.",
                &["target"],
            ),
            drill_failures: counter(
                "stowage_drill_failures_total",
                "Failed restore drills, by target.",
                &["target"],
            ),
            drill_duration: gauge(
                "stowage_drill_duration_seconds",
                "Duration of the target's last restore drill (container start to last check).",
                &["target"],
            ),
            shrinks: counter(
                "stowage_suspicious_shrink_total",
                "Backups much smaller than the previous one of their database (drill.shrink_alert), by target.",
                &["target"],
            ),
            stopped_seconds: gauge(
                "stowage_stopped_seconds",
                "How long the containers of the target were stopped during its last backup (stowage.stop): the longest of them, from the stop request to the start.",
                &["target"],
            ),
            leases: counter(
                "stowage_lease_total",
                "Lease claims before scheduled runs (coordination.storage), by target and result: won, takeover (an expired holder's run taken over), skipped (another daemon runs it), error (the storage did not answer; the run went ahead).",
                &["target", "result"],
            ),
            registry,
        };
        // Series with a fixed label set start at 0, so `increase()` sees the first event.
        for channel in super::alerts::CHANNEL_KINDS {
            m.alert_failures.with_label_values(&[channel]);
        }
        m.retention_deleted.with_label_values(&["local"]);
        m.retention_errors.with_label_values(&["local"]);
        m
    }

    /// Starts the per-storage series at 0.
    pub fn add_storage(&self, storage: &str) {
        for result in ["ok", "failed"] {
            self.uploads.with_label_values(&[storage, result]);
        }
        self.retention_deleted.with_label_values(&[storage]);
    }

    /// Counts an upload pass's results per storage.
    pub fn record_replication(&self, report: &Report) {
        for (storage, c) in &report.by_storage {
            self.uploads
                .with_label_values(&[storage, "ok"])
                .inc_by(c.uploaded as u64);
            self.uploads
                .with_label_values(&[storage, "failed"])
                .inc_by(c.failed as u64);
            self.retention_deleted
                .with_label_values(&[storage])
                .inc_by(c.pruned as u64);
        }
    }

    /// Forgets a target that is gone.
    pub fn remove_target(&self, target: &str) {
        for g in [
            &self.last_success,
            &self.last_result,
            &self.raw_bytes,
            &self.stored_bytes,
            &self.next_run,
            &self.drill_last_success,
            &self.drill_last_result,
            &self.drill_duration,
            &self.stopped_seconds,
        ] {
            let _ = g.remove_label_values(&[target]);
        }
        let _ = self.drill_failures.remove_label_values(&[target]);
        let _ = self.shrinks.remove_label_values(&[target]);
        for result in LEASE_RESULTS {
            let _ = self.leases.remove_label_values(&[target, result]);
        }
        let _ = self.duration.remove_label_values(&[target]);
        for reason in REASONS {
            let _ = self.failures.remove_label_values(&[target, reason]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_forgets_targets() {
        let m = Metrics::new();
        m.last_result.with_label_values(&["db"]).set(1.0);
        m.failures.with_label_values(&["db", "timeout"]).inc();
        m.duration.with_label_values(&["db"]).observe(12.0);
        let text = m.render();
        assert!(
            text.contains("stowage_backup_last_result{target=\"db\"} 1"),
            "{text}"
        );
        assert!(text.contains("stowage_build_info{version="), "{text}");
        m.remove_target("db");
        assert!(!m.render().contains("target=\"db\""));
    }
}

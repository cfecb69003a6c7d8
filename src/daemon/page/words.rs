//! A failure's reason class in plain words, for people who do not read metrics labels.

/// What a reason class means and what to do, in one sentence.
pub fn reason(class: &str) -> &'static str {
    match class {
        "not_running" => "The container was not running when the backup was due.",
        "docker" => "The Docker engine did not answer or refused a command.",
        "credentials" => "The database credentials could not be found or read.",
        "helper" => "The helper container that runs the dump tool could not be started.",
        "hook" => "The pre-backup hook failed or ran too long.",
        "stop" => "The container could not be stopped (or started again) for the backup.",
        "dump_failed" => {
            "The dump command failed: the database refused or the tool exited with an error."
        }
        "dump_error" => "The dump tool reported an error while dumping.",
        "incomplete" => "The dump ended early or was cut off: no complete backup was written.",
        "write" => "The backup could not be written to the backup directory.",
        "timeout" => "The backup took longer than daemon.backup_timeout and was stopped.",
        "upload" => "The backup was made, but uploading it to a storage failed.",
        "disk_space" => "There is not enough free disk space for the backup.",
        "restore" => "The artifact did not restore.",
        "rows_mismatch" => "The restored data did not match what the dump held.",
        _ => "The backup failed; the message below says why.",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_metric_reason_has_its_own_words() {
        for class in crate::daemon::metrics::REASONS {
            assert_ne!(
                super::reason(class),
                super::reason("something else"),
                "{class}"
            );
        }
    }
}

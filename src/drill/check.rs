//! The engine's drill commands in the drill container: ready, restored row counts, checks.
//! Each is rendered from the spec's `[drill]` with the values resolved in the drill container,
//! exactly as a backup renders its dump command.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::Docker;

use super::container::Throwaway;
use super::record::TableRows;
use crate::docker::exec::{self, ExecRequest, last_lines};
use crate::engine::spec::Compiled;
use crate::engine::{Engine, drill::Drill};

/// The most output a drill command may print (row counts of many tables fit).
const OUTPUT_LIMIT: usize = 16 << 20;
/// How many mismatching tables a failure names.
const NAMED: usize = 5;

/// A failed step: a reason class and a sentence.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The reason class (`not_ready`, `restore`, `rows_mismatch`, `check`, …).
    pub reason: &'static str,
    /// What happened and what to do.
    pub message: String,
}

impl Failed {
    /// A failure of class `reason`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Runs `compiled` in the container; its stdout and exit status.
async fn run(
    docker: &Docker,
    engine: &Engine,
    id: &str,
    compiled: &Compiled,
    values: &BTreeMap<String, String>,
) -> Result<(String, exec::ExitStatus), String> {
    let inv = engine
        .command_invocation(compiled, values)
        .map_err(|e| e.to_string())?;
    let req = ExecRequest {
        argv: inv.argv,
        env: inv.env,
        ..Default::default()
    };
    let (out, status) = exec::capture(docker, id, &req, OUTPUT_LIMIT)
        .await
        .map_err(|e| crate::error_text::one_line(&e))?;
    Ok((String::from_utf8_lossy(&out).into_owned(), status))
}

/// Waits until the engine's ready command succeeds (every second), or fails when the
/// container stops. The caller bounds the wait.
pub async fn wait_ready(
    docker: &Docker,
    engine: &Engine,
    drill: &Drill,
    container: &Throwaway,
    values: &BTreeMap<String, String>,
) -> Result<(), Failed> {
    let Some(ready) = &drill.ready else {
        return Ok(());
    };
    loop {
        if let Ok((_, status)) = run(docker, engine, &container.id, ready, values).await
            && status.success()
        {
            return Ok(());
        }
        if let Some(logs) = container.exited().await {
            return Err(Failed::new(
                "not_ready",
                format!(
                    "the engine in the drill container stopped before it was ready; its log ends: {logs}"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The restored database's rows per table, from the spec's `[drill.rows]` command.
pub async fn restored_rows(
    docker: &Docker,
    engine: &Engine,
    compiled: &Compiled,
    id: &str,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, u64>, Failed> {
    let fail = |m: String| Failed::new("rows", m);
    let (out, status) = run(docker, engine, id, compiled, values)
        .await
        .map_err(|e| fail(format!("counting the restored rows failed: {e}")))?;
    if !status.success() {
        return Err(fail(format!(
            "counting the restored rows failed: {}",
            last_lines(&status.stderr, 3)
        )));
    }
    parse_rows(&out).map_err(fail)
}

/// `table<TAB>rows` lines.
fn parse_rows(out: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut rows = BTreeMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let parsed = line
            .rsplit_once('\t')
            .and_then(|(t, n)| Some((t.to_string(), n.trim().parse::<u64>().ok()?)));
        match parsed {
            Some((t, n)) => rows.insert(t, n),
            None => {
                return Err(format!(
                    "the row count command printed {line:?}, not TABLE<TAB>ROWS"
                ));
            }
        };
    }
    Ok(rows)
}

/// Every table of the dump with its restored count, and a message naming the tables whose
/// counts differ (or that are missing), if any.
pub fn compare_rows(
    dump: &BTreeMap<String, u64>,
    restored: &BTreeMap<String, u64>,
) -> (BTreeMap<String, TableRows>, Option<String>) {
    let tables: BTreeMap<String, TableRows> = dump
        .iter()
        .map(|(t, n)| {
            (
                t.clone(),
                TableRows {
                    dump: *n,
                    restored: restored.get(t).copied(),
                },
            )
        })
        .collect();
    let bad: Vec<String> = tables
        .iter()
        .filter(|(_, r)| r.restored != Some(r.dump))
        .map(|(t, r)| match r.restored {
            Some(n) => format!("{t}: {} in the dump, {n} restored", r.dump),
            None => format!("{t}: {} in the dump, missing after the restore", r.dump),
        })
        .collect();
    let message = (!bad.is_empty()).then(|| {
        let more = bad.len().saturating_sub(NAMED);
        let mut m = format!(
            "the restored database does not hold what the dump holds: {}",
            bad[..bad.len().min(NAMED)].join("; ")
        );
        if more > 0 {
            m.push_str(&format!(" (and {more} more tables)"));
        }
        m
    });
    (tables, message)
}

/// Runs every check; each one's result by name, and the first failure.
pub async fn run_checks(
    docker: &Docker,
    engine: &Engine,
    drill: &Drill,
    id: &str,
    values: &BTreeMap<String, String>,
) -> (BTreeMap<String, bool>, Option<Failed>) {
    let mut results = BTreeMap::new();
    let mut first = None;
    for (spec, compiled) in drill.spec.checks.iter().zip(&drill.checks) {
        let verdict = match run(docker, engine, id, compiled, values).await {
            Err(e) => Err(e),
            Ok((_, status)) if !status.success() => Err(format!(
                "exit code {:?}: {}",
                status.code,
                last_lines(&status.stderr, 3)
            )),
            Ok((out, status)) => judge(
                &out,
                &status.stderr,
                &spec.fail_patterns,
                spec.expect.as_deref(),
            ),
        };
        results.insert(spec.name.clone(), verdict.is_ok());
        if let (Err(why), None) = (verdict, &first) {
            first = Some(Failed::new(
                "check",
                format!("check {:?} failed: {why}", spec.name),
            ));
        }
    }
    (results, first)
}

/// A check's output against its fail patterns and expected text.
fn judge(out: &str, err: &str, patterns: &[String], expect: Option<&str>) -> Result<(), String> {
    if let Some(line) = out
        .lines()
        .chain(err.lines())
        .find(|l| patterns.iter().any(|p| l.contains(p.as_str())))
    {
        return Err(crate::error_text::shorten(line, 300));
    }
    match expect {
        Some(e) if out.trim() != e => Err(format!(
            "expected {e:?}, got {:?}",
            crate::error_text::shorten(out.trim(), 300)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_compare() {
        let restored = parse_rows("public.t\t3\npublic.odd\tname\t0\n\n").unwrap();
        assert_eq!(restored.get("public.odd\tname"), Some(&0));
        assert!(parse_rows("t 3").is_err());
        let dump = BTreeMap::from([("public.t".to_string(), 3), ("public.u".to_string(), 1)]);
        let (tables, message) = compare_rows(&dump, &restored);
        assert_eq!(tables["public.t"].restored, Some(3));
        let m = message.unwrap();
        assert!(m.contains("public.u: 1 in the dump, missing"), "{m}");
        assert!(!m.contains("public.t"), "{m}");
        let same = BTreeMap::from([("public.t".to_string(), 3), ("public.u".to_string(), 1)]);
        assert_eq!(compare_rows(&dump, &same).1, None);
    }

    #[test]
    fn checks_judge_patterns_and_expectations() {
        let p = vec!["\terror\t".to_string()];
        assert!(judge("db.t\tcheck\tstatus\tOK\n", "", &p, None).is_ok());
        assert!(judge("db.t\tcheck\terror\tCorrupt\n", "", &p, None).is_err());
        assert!(judge("ok\n", "", &[], Some("ok")).is_ok());
        assert!(judge("*** in database main ***\n", "", &[], Some("ok")).is_err());
    }
}

//! Container labels, one `key=value` a line, through the label parser and the whole planner
//! (engine detection, variables, schedule, retention and storage labels): no input panics.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use stowage::discover::{ContainerInfo, Env, Mount};
use stowage::engine::Registry;
use stowage::plan::{self, Defaults, Entry};
use stowage::remote::config::Storages;
use stowage::retention::Policy;
use stowage::schedule::Schedule;

// Built once: the built-in engine specs take milliseconds to load, which was most of each run.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry::builtin().unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (labels, env): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| !l.starts_with("ENV "));
    let labels: BTreeMap<String, String> = labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env: Vec<String> = env.iter().map(|l| l[4..].to_string()).collect();
    let _ = stowage::discover::labels::Labels::parse(&labels);
    let container = ContainerInfo {
        id: "0123456789abcdef".into(),
        name: "fuzz".into(),
        image: labels
            .get("image")
            .cloned()
            .unwrap_or_else(|| "postgres:16".into()),
        state: "running".into(),
        labels,
        env: Env::from_list(&env),
        // A volume and a bind mount, so stowage.volumes / stowage.paths labels have something
        // to resolve against.
        mounts: vec![
            Mount {
                kind: "volume".into(),
                name: "data".into(),
                destination: "/data".into(),
            },
            Mount {
                kind: "bind".into(),
                name: String::new(),
                destination: "/srv/app".into(),
            },
        ],
    };
    let registry = &*REGISTRY;
    let schedule = Schedule::parse("0 3 * * *").unwrap();
    let entries = plan::plan(
        &[container],
        &Defaults {
            registry,
            schedule: &schedule,
            drill: Some(&schedule),
            encryption: true,
            retention: &Policy::default(),
            storages: &Storages::default(),
        },
    );
    for e in &entries {
        match e {
            Entry::Target(t) => {
                let _ = format!("{t:?}");
                let _ = t.next_run(chrono::DateTime::UNIX_EPOCH);
            }
            Entry::Skipped(s) => assert!(s.reason.len() < 4096, "{} bytes", s.reason.len()),
        }
    }
});

//! What a files target archives: `stowage.volumes` and `stowage.paths` resolved against the
//! container's mounts, without touching Docker.
//!
//! The archive is made in a helper container that mounts the target's volumes and bind mounts
//! (read-only) at their destinations, so everything archived must lie on one of them: a path
//! in the container's own layer is refused here, with the reason. Each volume or path becomes
//! one artifact, named by the volume (or the path), so its series of backups and its restore
//! are per volume.

use crate::discover::Mount;
use crate::discover::labels::{Labels, file_safe};

/// One directory archived into one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSet {
    /// The artifact's database name: the volume's name, or the path.
    pub name: String,
    /// The directory inside the container.
    pub path: String,
}

/// The directories a container's `stowage.volumes` and `stowage.paths` labels name, in
/// label order; `None` when neither is set. `Err` is the reason to skip the files target.
pub fn file_sets(labels: &Labels, mounts: &[Mount]) -> Result<Option<Vec<FileSet>>, String> {
    if labels.volumes.is_none() && labels.paths.is_none() {
        return Ok(None);
    }
    let mut sets: Vec<FileSet> = Vec::new();
    if let Some(text) = &labels.volumes {
        sets.extend(volumes(text, mounts)?);
    }
    if let Some(text) = &labels.paths {
        for item in items(text) {
            sets.push(path(item, mounts)?);
        }
    }
    if sets.is_empty() {
        return Err("stowage.volumes and stowage.paths name nothing to archive".into());
    }
    // A directory named twice (as a volume and as a path) is archived once.
    let mut seen = std::collections::HashSet::new();
    sets.retain(|s| seen.insert(s.path.clone()));
    for (i, a) in sets.iter().enumerate() {
        if let Some(b) = sets[..i]
            .iter()
            .find(|b| file_safe(&b.name) == file_safe(&a.name))
        {
            return Err(format!(
                "{} and {} would give artifacts of the same name ({}); name volumes by their volume name",
                b.name,
                a.name,
                file_safe(&a.name)
            ));
        }
    }
    Ok(Some(sets))
}

fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `all` (every named or anonymous volume), or volume names and mount destinations.
fn volumes(text: &str, mounts: &[Mount]) -> Result<Vec<FileSet>, String> {
    let set = |m: &Mount| FileSet {
        name: if m.kind == "volume" && !m.name.is_empty() {
            m.name.clone()
        } else {
            m.destination.clone()
        },
        path: m.destination.clone(),
    };
    if text.trim() == "all" {
        let mut all: Vec<FileSet> = mounts
            .iter()
            .filter(|m| m.kind == "volume")
            .map(set)
            .collect();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        if all.is_empty() {
            return Err(format!(
                "stowage.volumes=all, but the container mounts no volume ({}); name bind mounts by their destination",
                described(mounts)
            ));
        }
        return Ok(all);
    }
    items(text)
        .map(|item| {
            mounts
                .iter()
                .find(|m| (m.kind == "volume" && m.name == item) || m.destination == item)
                .map(set)
                .ok_or_else(|| {
                    format!(
                        "stowage.volumes names {item:?}, which the container does not mount ({}); use a volume name or a mount destination",
                        described(mounts)
                    )
                })
        })
        .collect()
}

/// A path inside the container: absolute, plain, and on one of its mounts.
fn path(item: &str, mounts: &[Mount]) -> Result<FileSet, String> {
    let bad = |why: &str| Err(format!("stowage.paths: {item:?} {why}"));
    if !item.starts_with('/') {
        return bad("is not an absolute path");
    }
    if item.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if item.split('/').any(|part| part == ".." || part == ".") {
        return bad("contains . or .. (write the path plainly)");
    }
    let path = match item.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let on_mount = mounts.iter().any(|m| {
        m.kind != "tmpfs"
            && (path == m.destination
                || path.starts_with(&format!("{}/", m.destination.trim_end_matches('/'))))
    });
    if !on_mount {
        return bad(&format!(
            "is not on a volume or bind mount of the container ({}); the helper that archives it sees only those. Keep data on a volume: a file in the container's own layer is lost with the container",
            described(mounts)
        ));
    }
    Ok(FileSet {
        name: path.to_string(),
        path: path.to_string(),
    })
}

/// The container's mounts, for messages.
fn described(mounts: &[Mount]) -> String {
    if mounts.is_empty() {
        return "it has no mounts".into();
    }
    let shown: Vec<String> = mounts
        .iter()
        .map(|m| match m.kind.as_str() {
            "volume" if !m.name.is_empty() => format!("volume {} at {}", m.name, m.destination),
            kind => format!("{kind} at {}", m.destination),
        })
        .collect();
    format!("it mounts {}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<Mount> {
        let m = |kind: &str, name: &str, destination: &str| Mount {
            kind: kind.into(),
            name: name.into(),
            destination: destination.into(),
        };
        vec![
            m("volume", "app-data", "/var/lib/app"),
            m("bind", "", "/srv/config"),
            m("volume", "cache", "/cache"),
            m("tmpfs", "", "/run/app"),
        ]
    }

    fn sets(volumes: Option<&str>, paths: Option<&str>) -> Result<Option<Vec<FileSet>>, String> {
        let labels = Labels {
            volumes: volumes.map(String::from),
            paths: paths.map(String::from),
            ..Labels::default()
        };
        file_sets(&labels, &mounts())
    }

    fn pairs(r: Result<Option<Vec<FileSet>>, String>) -> Vec<(String, String)> {
        r.unwrap()
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.path))
            .collect()
    }

    fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn volumes_by_name_destination_or_all() {
        assert_eq!(sets(None, None), Ok(None));
        assert_eq!(
            pairs(sets(Some("all"), None)),
            owned(&[("cache", "/cache"), ("app-data", "/var/lib/app")])
        );
        assert_eq!(
            pairs(sets(Some("app-data, /srv/config"), None)),
            owned(&[("app-data", "/var/lib/app"), ("/srv/config", "/srv/config")])
        );
        let err = sets(Some("pgdata"), None).unwrap_err();
        assert!(
            err.contains("\"pgdata\"") && err.contains("volume app-data at /var/lib/app"),
            "{err}"
        );
    }

    #[test]
    fn paths_must_be_plain_and_on_a_mount() {
        assert_eq!(
            pairs(sets(None, Some("/var/lib/app/uploads/, /srv/config"))),
            owned(&[
                ("/var/lib/app/uploads", "/var/lib/app/uploads"),
                ("/srv/config", "/srv/config")
            ])
        );
        for (path, why) in [
            ("etc/app", "absolute"),
            ("/var/lib/app/../../etc", ".."),
            ("/etc/app", "not on a volume"),
            ("/var/lib/application", "not on a volume"),
            ("/run/app/x", "not on a volume"),
        ] {
            let err = sets(None, Some(path)).unwrap_err();
            assert!(err.contains(why), "{path}: {err}");
        }
    }

    #[test]
    fn one_directory_once_and_distinct_artifact_names() {
        assert_eq!(
            pairs(sets(Some("app-data"), Some("/var/lib/app"))).len(),
            1,
            "the same directory twice is archived once"
        );
        assert_eq!(
            pairs(sets(Some("cache"), Some("/cache/x,/var/lib/app,/cache/x/"))),
            owned(&[
                ("cache", "/cache"),
                ("/cache/x", "/cache/x"),
                ("/var/lib/app", "/var/lib/app")
            ])
        );
        let m = vec![
            Mount {
                kind: "bind".into(),
                name: String::new(),
                destination: "/a_b".into(),
            },
            Mount {
                kind: "bind".into(),
                name: String::new(),
                destination: "/a/b".into(),
            },
        ];
        let labels = Labels {
            volumes: Some("/a_b,/a/b".into()),
            ..Labels::default()
        };
        assert!(file_sets(&labels, &m).unwrap_err().contains("same name"));
    }
}

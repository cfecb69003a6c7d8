//! Spec validation: what a spec writer gets told.

use super::*;

const MINIMAL: &str = r#"
name = "x"
description = "d"
extension = "sql"
[vars.password]
from = ["env:P"]
secret = true
[dump]
argv = ["dump"]
"#;

#[test]
fn builtin_postgres_is_valid() {
    let e = Engine::from_toml("postgres", include_str!("../../../engines/postgres.toml")).unwrap();
    assert!(e.dumps_one_database());
    assert!(e.dump_all.is_some());
    assert!(e.restore.is_some());
}

#[test]
fn secrets_never_in_argv() {
    let text = MINIMAL.replace("argv = [\"dump\"]", "argv = [\"dump\", \"-p{password}\"]");
    let e = Engine::from_toml("x.toml", &text).unwrap_err().to_string();
    assert!(
        e.contains("x.toml") && e.contains("dump.argv") && e.contains("secret"),
        "{e}"
    );
}

#[test]
fn errors_name_file_and_field() {
    let e = Engine::from_toml("my.toml", &format!("{MINIMAL}\nbogus = 1\n")).unwrap_err();
    assert!(
        e.to_string().contains("my.toml") && e.to_string().contains("bogus"),
        "{e}"
    );
    let e =
        Engine::from_toml("my.toml", &MINIMAL.replace("[\"dump\"]", "[\"{nope}\"]")).unwrap_err();
    assert_eq!(e.field, "dump.argv");
    let e = Engine::from_toml("my.toml", &MINIMAL.replace("env:P", "nv:P")).unwrap_err();
    assert!(e.reason.contains("env:NAME"), "{e}");
}

#[test]
fn a_stdout_buffer_is_checked_for_its_size_and_its_dump() {
    let with =
        |line: &str| MINIMAL.replace("argv = [\"dump\"]", &format!("argv = [\"dump\"]\n{line}"));
    let e = Engine::from_toml("x.toml", &with("stdout_buffer = 65536")).unwrap();
    assert_eq!(e.spec.dump.stdout_buffer, Some(65536));
    for bad in ["stdout_buffer = 512", "stdout_buffer = 2097152"] {
        let e = Engine::from_toml("x.toml", &with(bad))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dump.stdout_buffer") && e.contains("4096 to 1048576"),
            "{e}"
        );
    }
    let to_file = MINIMAL.replace(
        "argv = [\"dump\"]",
        "argv = [\"dump\", \"{file}\"]\nto_file = true\nstdout_buffer = 65536",
    );
    let e = Engine::from_toml("x.toml", &to_file)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not to_file"), "{e}");
}

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

//! Build script: packs the release executable's relative relocations (`-z pack-relative-relocs`,
//! DT_RELR) when building natively for a glibc that can load them (2.36 or later).
//!
//! A position-independent executable carries one relocation record per pointer in its static
//! data, and the loader reads them all at start-up. stowage has about 47,000 (mostly pointers
//! in chrono-tz's zone tables): 1.1 MB of records that stayed resident in the idle daemon.
//! Packed, they take 20 KB. The executable stays position-independent (ASLR is kept).
//! BENCHMARKS.md has the measurement.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let native_gnu = var("TARGET") == var("HOST") && var("TARGET").ends_with("-linux-gnu");
    if var("PROFILE") == "release" && native_gnu && glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the build machine's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at least
/// `major.minor`. The executable runs where it is built, or in an image of the same release.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .trim_start_matches("glibc ")
        .split('.')
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

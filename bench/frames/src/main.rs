//! zstd's streaming encoder (128 KiB writes, as stowage's writer thread gets its blocks)
//! against one-shot frames of 1, 2 and 4 MiB, and level 1 with larger hash tables (streaming,
//! as `compression.level = "auto"` uses at its lowest step), on a sample of a dump held in
//! memory. Every variant runs once per round, in
//! turn, for ROUNDS rounds; prints the median and range of the CPU seconds of this thread
//! and the compressed size. Usage: stowage-bench-frames SAMPLE [ROUNDS].

use std::io::Write;
use std::time::Duration;

use zstd::zstd_safe::CParameter;

/// CPU time of the calling thread (user + system), from /proc/thread-self/stat.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux");
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    // Fields 14 and 15 (utime, stime) are the 11th and 12th after the state letter (field 3).
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn stream(data: &[u8], level: i32, hash_log: u32) -> usize {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut e = zstd::stream::write::Encoder::new(&mut out, level).unwrap();
    e.include_checksum(true).unwrap();
    e.set_parameter(CParameter::HashLog(hash_log)).unwrap();
    for c in data.chunks(128 << 10) {
        e.write_all(c).unwrap();
    }
    e.finish().unwrap();
    out.len()
}

fn frames(data: &[u8], level: i32, frame: usize, hash_log: u32) -> usize {
    let mut c = zstd::bulk::Compressor::new(level).unwrap();
    c.include_checksum(true).unwrap();
    c.set_parameter(CParameter::HashLog(hash_log)).unwrap();
    let mut buf = Vec::with_capacity(zstd::zstd_safe::compress_bound(frame));
    let mut total = 0;
    for f in data.chunks(frame) {
        buf.clear();
        c.compress_to_buffer(f, &mut buf).unwrap();
        total += buf.len();
    }
    total
}

type Variant = (String, Box<dyn Fn(&[u8]) -> usize>);

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: stowage-bench-frames SAMPLE [ROUNDS]");
    let rounds: usize = args.next().map_or(5, |r| r.parse().expect("ROUNDS"));
    let data = std::fs::read(&path).unwrap();
    let mut variants: Vec<Variant> = Vec::new();
    for level in [1, 2, 3] {
        let name = format!("L{level} stream 128K");
        variants.push((name, Box::new(move |d| stream(d, level, 0))));
        for mib in [1, 2, 4] {
            let name = format!("L{level} frames {mib}M");
            variants.push((name, Box::new(move |d| frames(d, level, mib << 20, 0))));
        }
    }
    for log in [15, 16] {
        let name = format!("L1 stream 128K hashLog {log}");
        variants.push((name, Box::new(move |d| stream(d, 1, log))));
    }
    let mut times = vec![Vec::new(); variants.len()];
    let mut sizes = vec![0; variants.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in variants.iter().enumerate() {
            let before = thread_cpu();
            sizes[i] = f(&data);
            times[i].push((thread_cpu() - before).as_secs_f64());
        }
    }
    println!(
        "sample {} bytes, {rounds} rounds; CPU s median (min–max)",
        data.len()
    );
    println!("| variant | CPU s | MB/s | size | vs L3 stream |");
    println!("|---|---|---|---|---|");
    let l3 = variants
        .iter()
        .position(|(n, _)| n == "L3 stream 128K")
        .unwrap();
    for (i, (name, _)) in variants.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        let median = t[t.len() / 2];
        println!(
            "| {name} | {median:.2} ({:.2}–{:.2}) | {:.0} | {} | {:+.1}% |",
            t[0],
            t[t.len() - 1],
            data.len() as f64 / median / 1e6,
            sizes[i],
            (sizes[i] as f64 / sizes[l3] as f64 - 1.0) * 100.0
        );
    }
}

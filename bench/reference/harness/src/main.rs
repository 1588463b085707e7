//! reference_cycles - register+release cycles per second through the
//! original registry (scope_lock.rs, copied in beside this file at build
//! time), measured exactly as bench/core_cycles.c measures our core.
//!
//!   reference_cycles [-d DIR] [-t SECONDS] [N...]
//!
//! For each N: a child fills DIR/scope-bench-XXXXXX/scope.lock with N live
//! allocations (this process's pid, rule /bench/pN write recursive, socket
//! /run/bench/pod-N.sock, a fresh session), then this process loops for
//! SECONDS over one cycle = open+lock, register_pod("cycle", /bench/cycle
//! write recursive), unlock; open+lock, release_pod("cycle"), unlock.
//! Prints the same columns as core_cycles.
#[allow(dead_code)]
mod scope_lock;

use manifest::{Permission, ScopeRule};
use scope_lock::{Allocation, LockFileGuard};
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::Instant;

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("reference_cycles: {what}: {e}");
    exit(1);
}

fn status_kib(field: &str) -> i64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return -1;
    };
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(-1)
}

fn write_rule(target: String) -> ScopeRule {
    ScopeRule {
        target: PathBuf::from(target),
        permission: Permission::Write,
        recursive: true,
    }
}

/// One locked operation, as a pod of the original does it.
fn one_op(path: &Path, register: bool, pid: u32) {
    let mut g = LockFileGuard::open(path).unwrap_or_else(|e| die("open", e));
    let r = if register {
        scope_lock::register_pod(
            &mut g,
            "cycle".into(),
            pid,
            PathBuf::from("/tmp/cycle.sock"),
            vec![write_rule("/bench/cycle".into())],
            session_store::new_session_id(),
        )
    } else {
        scope_lock::release_pod(&mut g, "cycle")
    };
    if let Err(e) = r {
        die(if register { "register" } else { "release" }, e);
    }
}

/// Fills the table in a child, so this process's memory figures show only
/// what a user of the table holds.  Each entry goes through the original's
/// own conflict check; the table is saved once, as core_cycles does (N
/// register_pod calls would rewrite the whole file N times).
fn fill(path: &Path, n: u64, pid: u32) {
    // SAFETY: single-threaded process; the child only runs Rust code that
    // does not depend on other threads, then _exit()s.
    let child = unsafe { libc::fork() };
    if child < 0 {
        die("fork", std::io::Error::last_os_error());
    }
    if child > 0 {
        let mut status = 0;
        // SAFETY: waiting for the child we just forked.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            exit(1);
        }
        return;
    }
    let mut g = LockFileGuard::open(path).unwrap_or_else(|e| die("open", e));
    for i in 0..n {
        let rule = write_rule(format!("/bench/p{i}"));
        if let Some(c) = scope_lock::find_conflict_owner(g.data(), &rule, None) {
            die("fill", format!("/bench/p{i} conflicts with {c}"));
        }
        g.data_mut().allocations.push(Allocation {
            pod_name: format!("pod-{i}"),
            pid,
            socket: PathBuf::from(format!("/run/bench/pod-{i}.sock")),
            scope_allow: vec![rule],
            delegated_from: None,
            session_id: Some(session_store::new_session_id()),
        });
    }
    g.save().unwrap_or_else(|e| die("save", e));
    drop(g);
    // SAFETY: leave without running the parent's atexit handlers.
    unsafe { libc::_exit(0) };
}

fn mkdtemp(dir: &str) -> PathBuf {
    let tmpl = CString::new(format!("{dir}/scope-bench-XXXXXX")).unwrap();
    let mut buf = tmpl.into_bytes_with_nul();
    // SAFETY: buf is a NUL-terminated template that mkdtemp edits in place.
    if unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) }.is_null() {
        die("mkdtemp", std::io::Error::last_os_error());
    }
    buf.pop();
    PathBuf::from(std::ffi::OsString::from_vec(buf))
}

fn usage() -> ! {
    eprintln!("usage: reference_cycles [-d DIR] [-t SECONDS] [N...]");
    exit(2);
}

fn main() {
    let mut dir = String::from("/dev/shm");
    let mut secs = 2.0f64;
    let mut sizes: Vec<u64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-d" => dir = args.next().unwrap_or_else(|| usage()),
            "-t" => {
                secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "-h" => {
                println!("usage: reference_cycles [-d DIR] [-t SECONDS] [N...]");
                return;
            }
            _ => sizes.push(a.parse().unwrap_or_else(|_| usage())),
        }
    }
    if sizes.is_empty() {
        sizes = vec![0, 100, 1000, 10000];
    }
    let pid = std::process::id();
    let mut out = std::io::stdout();
    println!(
        "{:>8} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "live", "cycles/s", "us/cycle", "file KiB", "peak KiB", "rss KiB"
    );
    for n in sizes {
        let tmp = mkdtemp(&dir);
        let path = tmp.join("scope.lock");
        fill(&path, n, pid);
        one_op(&path, true, pid); // warm up, as core_cycles does
        one_op(&path, false, 0);
        let t0 = Instant::now();
        let mut cycles = 0u64;
        let el = loop {
            one_op(&path, true, pid);
            one_op(&path, false, 0);
            cycles += 1;
            let el = t0.elapsed().as_secs_f64();
            if el >= secs {
                break el;
            }
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "{:>8} {:>12.0} {:>12.1} {:>10.1} {:>10} {:>10}",
            n,
            cycles as f64 / el,
            el * 1e6 / cycles as f64,
            size as f64 / 1024.0,
            status_kib("VmHWM"),
            status_kib("VmRSS")
        );
        let _ = out.flush();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&tmp);
    }
}

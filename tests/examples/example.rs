// scopefs from Rust (std only): register, adopt, set rules, a refusal, release.
// Build: rustc --edition 2021 example.rs; run: ./example [MOUNT]  (or SCOPEFS_MOUNT=MOUNT)
use std::{env, fs, io, path::Path, process};

const EBUSY: i32 = 16;

fn get(path: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path)?.trim_end().to_string())
}

fn main() -> io::Result<()> {
    let mnt = env::args()
        .nth(1)
        .or_else(|| env::var("SCOPEFS_MOUNT").ok())
        .unwrap_or_else(|| "/run/scopes".into());
    let pod = Path::new(&mnt).join("worker");

    fs::create_dir(&pod)?; // registers worker, owned by this process
    fs::write(pod.join("pid"), format!("{}\n", process::id()))?; // adopts
    fs::write(pod.join("allow"), "write recursive /srv/proj/src\nread recursive /srv/proj\n")?;
    println!("worker: pid {}, session {}", get(&pod.join("pid"))?, get(&pod.join("session"))?);
    println!("{}", get(&pod.join("allow"))?);

    let rival = Path::new(&mnt).join("rival");
    fs::create_dir(&rival)?;
    match fs::write(rival.join("allow"), "write recursive /srv/proj/src/lib\n") {
        Err(e) if e.raw_os_error() == Some(EBUSY) => println!("rival refused: EBUSY"),
        other => other?,
    }

    fs::remove_dir(&rival)?; // releases
    fs::remove_dir(&pod)?;
    println!("released");
    Ok(())
}

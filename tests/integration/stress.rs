//! Concurrency stress: threads doing random operations on overlapping paths while snapshots
//! are created and deleted and gc runs, for a bounded time. A watchdog fails the test if
//! progress stops (a deadlock); afterwards the store must verify clean.

use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Mounted, snapfs};

fn seconds() -> u64 {
    std::env::var("SNAPFS_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

fn worker(m: &Mounted, seed: u64, stop: &AtomicBool, progress: &AtomicU64) {
    let mut state = seed | 1;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    while !stop.load(Ordering::Relaxed) {
        // Few names, shared by every worker: operations collide on purpose.
        let a = m.path(&format!("d{}/f{}", next(3), next(6)));
        let b = m.path(&format!("d{}/f{}", next(3), next(6)));
        let _ = fs::create_dir(a.parent().unwrap());
        // Errors (ENOENT, ENOTEMPTY, ...) are expected when others got there first.
        let _ = match next(8) {
            0 | 1 => fs::File::create(&a).and_then(|mut f| {
                let data = vec![next(256) as u8; next(400_000) as usize];
                f.write_all(&data)
            }),
            2 => fs::read(&a).map(drop),
            3 => fs::rename(&a, &b),
            4 => fs::remove_file(&a),
            5 => fs::OpenOptions::new()
                .write(true)
                .open(&a)
                .and_then(|f| f.set_len(next(200_000))),
            6 => fs::File::open(&a).and_then(|f| f.sync_all()),
            _ => fs::remove_dir(a.parent().unwrap()),
        };
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn random_operations_snapshots_and_gc_together() {
    let m = Arc::new(Mounted::new());
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for seed in 1..=4u64 {
        let (m, stop, progress) = (m.clone(), stop.clone(), progress.clone());
        threads.push(std::thread::spawn(move || {
            worker(&m, seed, &stop, &progress)
        }));
    }
    {
        let (m, stop, progress) = (m.clone(), stop.clone(), progress.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let control = m.path(".snapshots/.control");
                fs::write(&control, format!("create s{n}\n")).expect("snapshot create");
                if n >= 3 {
                    fs::write(&control, format!("delete s{}\n", n - 3)).expect("snapshot delete");
                }
                n += 1;
                progress.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (m, stop, progress) = (m.clone(), stop.clone(), progress.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = snapfs(&["gc", "--mount", m.mnt.to_str().unwrap()]);
                assert!(
                    out.status.success(),
                    "gc: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                progress.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    let end = Instant::now() + Duration::from_secs(seconds());
    let mut last = (0, Instant::now());
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250));
        let now = progress.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(30) {
            stop.store(true, Ordering::Relaxed);
            panic!("watchdog: no progress for 30 s at {now} operations (deadlock?)");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a stress thread panicked");
    }
    assert!(progress.load(Ordering::Relaxed) > 100);
    let verify = snapfs(&["verify", "--mount", m.mnt.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!("stress: {} operations", progress.load(Ordering::Relaxed));
}

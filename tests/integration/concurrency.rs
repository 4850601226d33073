//! Many threads on one mount: each sees exactly its own data, and nothing deadlocks.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::harness::Mounted;

fn block(thread: usize, round: usize) -> Vec<u8> {
    let seed = (thread * 7919 + round * 104_729) as u32;
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8)
        .collect()
}

#[test]
fn parallel_writers_and_readers_see_their_own_data() {
    let m = Arc::new(Mounted::new());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let dir = m.path(&format!("t{t}"));
                fs::create_dir(&dir).unwrap();
                for round in 0..15 {
                    let path = dir.join(format!("f{}", round % 4));
                    let data = block(t, round);
                    fs::write(&path, &data).unwrap();
                    assert_eq!(fs::read(&path).unwrap(), data, "thread {t} round {round}");
                    if round % 5 == 4 {
                        fs::rename(&path, dir.join("renamed")).unwrap();
                        fs::remove_file(dir.join("renamed")).unwrap();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a worker panicked");
    }
}

#[test]
fn concurrent_readers_of_one_file_while_it_is_appended() {
    let m = Mounted::new();
    let path = m.path("shared");
    let chunk = block(1, 1);
    let mut writer = fs::File::create(&path).unwrap();
    writer.write_all(&chunk).unwrap();
    writer.flush().unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut f = fs::File::open(&path).unwrap();
                for _ in 0..50 {
                    let mut head = vec![0u8; chunk.len()];
                    f.seek(SeekFrom::Start(0)).unwrap();
                    f.read_exact(&mut head).unwrap();
                    assert!(head == chunk, "the first block never changes");
                }
            });
        }
        for _ in 0..20 {
            writer.write_all(&chunk).unwrap();
        }
    });
    writer.sync_all().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 21 * chunk.len() as u64);
}

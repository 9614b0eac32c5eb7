//! The store on a full disk (a small tmpfs; needs root, skipped without).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Store;
use crate::error::Error;
use crate::records::container::{ContainerRecord, ContainerSpec};

/// A tmpfs of `mb` megabytes, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(tag: &str, mb: u32) -> Option<Tmpfs> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("store-full-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount a tmpfs");
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![7u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    while f.write_all(&block[..512]).is_ok() {}
}

fn record(id: &str, name: &str) -> ContainerRecord {
    ContainerRecord::new(id.into(), name.into(), "img".into(), ContainerSpec::default())
}

/// Inserts containers until the store refuses one; returns those it took
/// and the refused one's error and id.
async fn insert_until_refused(store: &Store, round: usize) -> (Vec<ContainerRecord>, Error, String) {
    let mut taken = Vec::new();
    for i in 0..10_000 {
        let rec = record(&format!("r{round}-{i}"), &format!("n{round}-{i}"));
        match store.insert_container(&rec).await {
            Ok(()) => taken.push(rec),
            Err(e) => return (taken, e, rec.id),
        }
    }
    panic!("the store never ran out of space");
}

#[tokio::test]
async fn a_write_that_fails_on_a_full_disk_is_undone_and_writes_resume() {
    let Some(fs) = Tmpfs::mount("cycle", 16) else {
        return;
    };
    let dir = fs.0.join("store");
    let store = Store::open(&dir).unwrap();
    store.insert_container(&record("kept", "kept")).await.unwrap();
    for round in 0..3 {
        let filler = fs.0.join("filler");
        fill(&filler);
        let (taken, err, refused) = insert_until_refused(&store, round).await;
        assert!(matches!(err, Error::StoreFull(_)), "round {round}: {err}");
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
        assert!(store.containers.get(&refused).unwrap().is_none(), "round {round}: a failed write is not visible");
        assert_eq!(store.containers.list().unwrap().len(), 1 + taken.len(), "round {round}: reads work on a full disk");
        std::fs::remove_file(&filler).unwrap();
        for rec in &taken {
            store.remove_container(rec).await.unwrap();
        }
        store.insert_container(&record("new", "new")).await.unwrap();
        store.remove_container(&record("new", "new")).await.unwrap();
    }
    drop(store);
    let store = Store::open(&dir).unwrap();
    let ids: Vec<String> = store.containers.list().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["kept"]);
}

#[tokio::test]
async fn reads_go_on_when_the_disk_fills_again_before_a_write_fits() {
    let Some(fs) = Tmpfs::mount("twice", 16) else {
        return;
    };
    let dir = fs.0.join("store");
    let store = Store::open(&dir).unwrap();
    store.insert_container(&record("kept", "kept")).await.unwrap();
    fill(&fs.0.join("filler1"));
    let (mut taken, _, _) = insert_until_refused(&store, 0).await;
    // The reserve given back to reopen the store is gone too.
    fill(&fs.0.join("filler2"));
    let (more, err, refused) = insert_until_refused(&store, 1).await;
    taken.extend(more);
    assert!(matches!(err, Error::StoreFull(_)), "{err}");
    assert!(store.containers.get(&refused).unwrap().is_none());
    assert_eq!(store.containers.list().unwrap().len(), 1 + taken.len(), "reads work");
    let err = store.insert_container(&record("x", "x")).await.unwrap_err();
    assert!(matches!(err, Error::StoreFull(_)), "{err}");
    std::fs::remove_file(fs.0.join("filler1")).unwrap();
    std::fs::remove_file(fs.0.join("filler2")).unwrap();
    store.insert_container(&record("x", "x")).await.unwrap();
    for rec in &taken {
        store.remove_container(rec).await.unwrap();
    }
    drop(store);
    let store = Store::open(&dir).unwrap();
    let mut ids: Vec<String> = store.containers.list().unwrap().into_iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(ids, ["kept", "x"]);
}

/// What the monitor's `persist_later` relies on: a refused update leaves
/// the stored record as it was, so the retry still finds it unchanged.
#[tokio::test]
async fn a_refused_update_leaves_the_record_as_it_was() {
    let Some(fs) = Tmpfs::mount("update", 16) else {
        return;
    };
    let store = Store::open(&fs.0.join("store")).unwrap();
    store.insert_container(&record("c", "c")).await.unwrap();
    fill(&fs.0.join("filler"));
    let mut saved = "c".to_string();
    for i in 0..1000 {
        // Large values, to use up the room sled's log already holds.
        let name = format!("{i}-{}", "x".repeat(100_000));
        match store.containers.put("c", &record("c", &name)).await {
            Ok(()) => saved = name,
            Err(e) => {
                assert!(matches!(e, Error::StoreFull(_)), "{e}");
                assert_eq!(store.containers.get("c").unwrap().unwrap().name, saved);
                std::fs::remove_file(fs.0.join("filler")).unwrap();
                store.containers.put("c", &record("c", &name)).await.unwrap();
                assert_eq!(store.containers.get("c").unwrap().unwrap().name, name);
                return;
            }
        }
    }
    panic!("the store never ran out of space");
}

/// Fails the whole test binary if `what` is not done within `secs`: a hang
/// inside sled cannot be cancelled, and would block the runtime's drop.
fn watchdog(what: &'static str, secs: u64) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(std::time::Duration::from_secs(secs))
        {
            eprintln!("{what}: still not done after {secs} s; the store hangs");
            std::process::exit(101);
        }
    });
    done
}

/// sled writes a tree node bigger than a quarter of its 512 KiB segment to
/// a file of its own (a blob). When that write fails on a full disk, sled
/// 0.34.7 returned the error with its log buffer still claimed, and the
/// next flush (the one made when the database is dropped to be reopened)
/// waited for that buffer forever (third_party/sled/PATCHED.md). The room
/// left on the disk decides which write fails first, so several are tried;
/// before the fix, 320 KB hung.
#[tokio::test]
async fn a_failed_write_of_a_large_node_neither_hangs_nor_loses_the_store() {
    let done = watchdog("a_failed_write_of_a_large_node", 120);
    for room_kb in (0..400).step_by(16) {
        let Some(fs) = Tmpfs::mount(&format!("blob{room_kb}"), 16) else {
            return;
        };
        large_nodes_on_a_full_disk(&fs.0, room_kb).await;
    }
    done.send(()).unwrap();
}

/// Fills the disk but `room_kb`, then inserts large records until one is
/// refused; checks that the store recovers once there is room.
async fn large_nodes_on_a_full_disk(base: &Path, room_kb: u64) {
    let dir = base.join("store");
    let store = Store::open(&dir).unwrap();
    store.insert_container(&record("kept", "kept")).await.unwrap();
    let filler = base.join("filler");
    fill(&filler);
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&filler).unwrap().set_len(len.saturating_sub(room_kb * 1024)).unwrap();
    let mut taken = Vec::new();
    let mut refused = None;
    for i in 0..1000 {
        // ~20 KB each: a leaf of up to 17 of them is written as a blob.
        let rec = record(&format!("big-{i:04}"), &format!("{i}-{}", "y".repeat(20_000)));
        match store.insert_container(&rec).await {
            Ok(()) => taken.push(rec),
            Err(e) => {
                refused = Some((e, rec.id));
                break;
            }
        }
    }
    let (err, refused) = refused.expect("the store never ran out of space");
    assert!(matches!(err, Error::StoreFull(_)), "{err}");
    assert!(store.containers.get(&refused).unwrap().is_none());
    assert_eq!(store.containers.list().unwrap().len(), 1 + taken.len(), "reads work");
    std::fs::remove_file(&filler).unwrap();
    store.insert_container(&record("after", "after")).await.unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.containers.list().unwrap().len(), 2 + taken.len());
}

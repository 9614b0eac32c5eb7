//! Threads living in their own network namespace.
//!
//! A thread that calls `unshare(CLONE_NEWNET)` is alone in a fresh netns;
//! sockets it opens and processes it spawns (`nft`, `ip`) live there too.

use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::sched::{unshare, CloneFlags};

/// Runs `body` in a new thread inside a fresh network namespace and returns
/// its result (re-raising its panic).
pub(in crate::firewall) fn in_netns<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let handle = std::thread::spawn(move || {
        enter_new_netns();
        body()
    });
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn enter_new_netns() {
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): tests need root");
    super::sh("ip", &["link", "set", "lo", "up"]);
}

type Job = Box<dyn FnOnce() + Send>;

/// A worker thread owning a fresh network namespace (a "machine" or
/// "container" in traffic tests); closures sent to it run inside it.
pub(in crate::firewall) struct Node {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    tid: i32,
}

impl Node {
    pub fn spawn() -> Node {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (tid_tx, tid_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter_new_netns();
            tid_tx.send(nix::unistd::gettid().as_raw()).expect("send tid");
            inbox.into_iter().for_each(|job| job());
        });
        let tid = tid_rx.recv().expect("netns worker died");
        Node { jobs: Some(jobs), thread: Some(thread), tid }
    }

    /// Thread id, usable as `ip link set <dev> netns <tid>`.
    pub fn tid(&self) -> String {
        self.tid.to_string()
    }

    /// Runs `f` inside this node's namespace and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || drop(tx.send(f())));
        self.jobs.as_ref().expect("node alive").send(job).expect("node died");
        rx.recv().expect("job panicked in node")
    }

    /// Runs a command inside this node's namespace.
    pub fn sh(&self, cmd: &'static str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.run(move || super::sh(cmd, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

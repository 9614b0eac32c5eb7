//! A `runtimed` of the test's own, in the test's own "host" namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{bin_dir, unique, Netns};

/// What a `runtimectl` invocation printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Daemon {
    /// The namespace the daemon takes as the host's network.
    pub ns: Netns,
    pub dir: PathBuf,
    pub cgroup_parent: String,
    /// Flags added to every start (e.g. the cluster store).
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    /// A fresh namespace, directories and daemon, ready to serve.
    pub fn start() -> Daemon {
        Daemon::start_with(|_| {}, Vec::new())
    }

    /// A daemon whose namespace `wire` links up first, started with `extra_args`.
    pub fn start_with(wire: impl FnOnce(&Netns), extra_args: Vec<String>) -> Daemon {
        Daemon::try_start_with(wire, extra_args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Daemon::start_with`], for daemons that may refuse to start:
    /// the error says how it exited, with its log.
    pub fn try_start_with(wire: impl FnOnce(&Netns), extra_args: Vec<String>) -> Result<Daemon, String> {
        let name = unique("rt");
        let ns = Netns::new(&name);
        wire(&ns);
        let dir = PathBuf::from(format!("/tmp/{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut d = Daemon { ns, dir, cgroup_parent: format!("{name}-cg"), extra_args, child: None };
        d.try_spawn()?;
        Ok(d)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("runtimed.sock")
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Starts the daemon process and waits until it answers.
    pub fn spawn(&mut self) {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the daemon with `RUNTIMED_CRASH_AT=point`: it kills itself
    /// when it reaches that step (debug builds).
    pub fn spawn_crashing_at(&mut self, point: &str) {
        self.launch(&[("RUNTIMED_CRASH_AT", point)]);
        self.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Reaps a daemon that died by itself; false if it still runs after
    /// `timeout`.
    pub fn wait_exited(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return true;
                }
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    /// Starts the daemon process; waits until it answers or exits.
    pub fn try_spawn(&mut self) -> Result<(), String> {
        self.launch(&[]);
        self.wait_ready()
    }

    fn launch(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("daemon log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path()))
            .arg(bin_dir().join("runtimed"))
            .arg("--root")
            .arg(self.root())
            .arg("--run-dir")
            .arg(self.run_dir())
            .arg("--socket")
            .arg(self.socket())
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(&self.extra_args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn runtimed");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("runtimed exited with {status}:\n{}", self.log()));
            }
            if self.socket().exists() && self.ctl(&["version"]).code == 0 {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("runtimed did not answer within 30s:\n{}", self.log()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL, leaving its containers running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon gracefully (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_cmd(args).output().map(Output::from).expect("spawn runtimectl")
    }

    /// A `runtimectl` command aimed at this daemon, for tests that stream.
    pub fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_dir().join("runtimectl"));
        cmd.env("RUNTIMED_HOST", self.host()).args(args).stdin(Stdio::null());
        cmd
    }

    /// Restarts the daemon with its `--root` on a tmpfs of `megabytes` (the
    /// state so far copied over), for full-disk tests; the harness unmounts
    /// it at cleanup like any mount under the test's directory.
    pub fn restart_on_small_disk(&mut self, megabytes: u32) {
        self.stop();
        let (root, saved) = (self.root(), self.dir.join("root-saved"));
        crate::sh(&format!(
            "mv {0} {1} && mkdir {0} && mount -t tmpfs -o size={megabytes}m tmpfs {0} && cp -a {1}/. {0}/ && \
             (umount {1}/containers 2>/dev/null || true)",
            root.display(),
            saved.display()
        ));
        self.spawn();
    }

    /// Restarts the daemon with its run dir on a fresh tmpfs that is a
    /// shared mount, as /run is on a systemd host (before any container).
    pub fn restart_with_shared_run_dir(&mut self) {
        self.stop();
        crate::sh(&format!(
            "umount {0}/containers {0}/netns {0}/mount-template && mount -t tmpfs tmpfs {0} && mount --make-shared {0}",
            self.run_dir().display()
        ));
        self.spawn();
    }

    /// `runtimectl inspect NAME`, parsed: the container's JSON object.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect prints JSON");
        v[0].clone()
    }

    /// Runs `runtimectl`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(out.code, 0, "runtimectl {args:?} failed: {out:?}\ndaemon log:\n{}", self.log());
        out.stdout
    }

    /// Where the daemon keeps each container's bundle (spec, rootfs mount
    /// point, /etc files, shim sockets).
    pub fn mount_template(&self) -> PathBuf {
        self.run_dir().join("mount-template")
    }
    pub fn bundles_dir(&self) -> PathBuf {
        self.run_dir().join("containers")
    }

    /// Container ids known to the daemon.
    pub fn container_ids(&self) -> Vec<String> {
        self.ok(&["ps", "-aq"]).lines().map(String::from).collect()
    }

    /// Resources the daemon should have removed: container directories and
    /// bundles, namespaces, libcontainer state, mounts and cgroups.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [
            self.root().join("containers"),
            self.bundles_dir(),
            self.run_dir().join("netns"),
            self.run_dir().join("libcontainer"),
        ] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                found.push(entry.path().display().to_string());
            }
        }
        // The daemon binds the two directories shims detach onto themselves
        // (shim/mounts.rs), and its mount template to a file
        // (shim/template.rs): those mounts are its own, not a container's.
        let own = [self.bundles_dir(), self.run_dir().join("netns"), self.mount_template()];
        found.extend(self.mounts().into_iter().filter(|m| !own.iter().any(|o| Path::new(m) == o)));
        found.extend(self.cgroups().into_iter().map(|p| p.display().to_string()));
        found
    }

    /// Mounts under the daemon's directories, as this (the host's) mount
    /// table has them.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(), &self.dir)
    }

    /// Container cgroups under the daemon's parent, in every v1 controller
    /// (or the v2 tree).
    pub fn cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for parent in self.cgroup_parents() {
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    found.push(entry.path());
                }
            }
        }
        found
    }

    fn cgroup_parents(&self) -> Vec<PathBuf> {
        let base = Path::new("/sys/fs/cgroup");
        let mut parents = vec![base.join(&self.cgroup_parent)];
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            parents.push(entry.path().join(&self.cgroup_parent));
        }
        parents.into_iter().filter(|p| p.is_dir()).collect()
    }

    fn cleanup(&mut self) {
        if self.child.is_some() {
            for id in self.ctl(&["ps", "-aq"]).stdout.lines() {
                let _ = self.ctl(&["rm", "-f", id]);
            }
        }
        self.stop();
        for m in self.mounts().into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for parent in self.cgroup_parents() {
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(entry.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- runtimed log ({}) ---\n{}", self.dir.display(), self.log());
        }
        self.cleanup();
    }
}

impl From<std::process::Output> for Output {
    fn from(o: std::process::Output) -> Self {
        Output {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Mount points of `mountinfo` inside `dir`. Compared as paths, not
/// strings: cleaning up `/tmp/rt1x1` must not unmount the namespaces of
/// `/tmp/rt1x16`, a test running next to it.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_of_a_sibling_with_a_longer_name_are_not_ours() {
        let info = "\
36 35 0:33 / /tmp/rt1x1/run/netns/a rw shared:1 - nsfs nsfs rw
37 35 0:33 / /tmp/rt1x16/run/netns/b rw shared:1 - nsfs nsfs rw
38 35 0:34 / /tmp/rt1x1 rw shared:1 - tmpfs tmpfs rw
";
        assert_eq!(mounts_under(info, Path::new("/tmp/rt1x1")), ["/tmp/rt1x1/run/netns/a", "/tmp/rt1x1"]);
    }
}

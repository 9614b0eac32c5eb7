//! Trust: what a hostile container, a hostile request or an unprivileged
//! host user can do, and that none of it reaches the host.

use std::process::{Command, Stdio};

use integration_tests::{import_tools, Daemon};

/// Runs `cmd` as the unprivileged user nobody (uid/gid 65534).
fn as_nobody(cmd: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .args(cmd)
        .output()
        .expect("spawn setpriv")
}

/// Runs `cmd` with room for 100k arguments (the kernel allows argv up to a
/// quarter of the stack limit, at most 6 MiB).
fn with_big_stack(mut cmd: Command) -> integration_tests::Output {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 64 << 20, rlim_max: libc::RLIM_INFINITY };
            libc::setrlimit(libc::RLIMIT_STACK, &lim);
            Ok(())
        });
    }
    cmd.output().expect("spawn runtimectl").into()
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn id_of(d: &Daemon, name: &str) -> String {
    d.inspect(name)["Id"].as_str().expect("an id").to_string()
}

#[test]
fn host_users_reach_no_container_state() {
    let d = Daemon::start();
    // A container leaves a setuid-root copy of busybox in its layer.
    d.ok(&[
        "run",
        "--name",
        "suid",
        "-e",
        "SECRET=hunter2",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /suid && chmod 4755 /suid && echo logged-secret",
    ]);
    let id = id_of(&d, "suid");
    let dir = d.root().join("containers").join(&id);
    let setuid = dir.join("upper/suid");
    assert_eq!(mode(&setuid) & 0o4000, 0o4000, "the layer holds a setuid file");
    let out = as_nobody(&[setuid.to_str().unwrap(), "id", "-u"]);
    assert!(!out.status.success(), "nobody ran the setuid file: {out:?}");
    let bundle = d.bundles_dir().join(&id);
    for secret in [bundle.join("config.json"), dir.join("container.log")] {
        let out = as_nobody(&["cat", secret.to_str().unwrap()]);
        assert!(!out.status.success(), "nobody read {}: {out:?}", secret.display());
        assert_eq!(mode(&secret), 0o600, "{}", secret.display());
    }
    let private_dirs = [d.root(), d.root().join("containers"), d.root().join("images"), dir.clone()];
    for private in private_dirs.into_iter().chain([d.bundles_dir(), bundle]) {
        assert_eq!(mode(&private), 0o700, "{}", private.display());
    }
    assert_eq!(mode(&d.run_dir()), 0o711);
    // A non-root user in the container still reads its /etc files.
    let out = d.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts >/dev/null && ls / >/dev/null && echo ok",
    ]);
    assert_eq!(out, "ok\n");
    // A user who may not open the socket is told so.
    let out =
        as_nobody(&[integration_tests::bin_dir().join("runtimectl").to_str().unwrap(), "--host", &d.host(), "ps"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permission denied"), "{stderr}");
}

#[test]
fn an_old_open_state_tree_is_made_private_at_start() {
    let mut d = Daemon::start();
    d.ok(&["create", "--name", "c", "busybox", "true"]);
    let id = id_of(&d, "c");
    let (dir, bundle) = (d.root().join("containers").join(&id), d.bundles_dir().join(&id));
    d.stop();
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    for (path, m) in
        [(d.root(), 0o755), (dir.clone(), 0o755), (bundle.clone(), 0o755), (bundle.join("config.json"), 0o644)]
    {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    d.spawn();
    for path in [d.root(), dir, bundle.clone()] {
        assert_eq!(mode(&path), 0o700, "{}", path.display());
    }
    assert_eq!(mode(&bundle.join("config.json")), 0o600);
}

/// An older daemon kept the bundle (spec, rootfs mount point, /etc files,
/// sockets) in the container's directory on the disk: such a container
/// still starts, runs and goes without a trace.
#[test]
fn a_container_with_its_bundle_in_the_old_place_still_runs() {
    let mut d = Daemon::start();
    d.ok(&["create", "--name", "old", "busybox", "sh", "-c", "cat /etc/hostname; echo ran"]);
    let id = id_of(&d, "old");
    let dir = d.root().join("containers").join(&id);
    d.stop();
    let _ = std::fs::remove_dir_all(d.bundles_dir().join(&id));
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    d.spawn();
    let out = d.ok(&["start", "-a", "old"]);
    assert_eq!(out, format!("{}\nran\n", &id[..12]));
    assert!(dir.join("hostname").is_file() && !d.bundles_dir().join(&id).exists(), "the bundle stayed where it was");
    d.ok(&["rm", "old"]);
    assert!(d.leftovers().is_empty(), "{:?}", d.leftovers());
}

/// On a host whose /run is shared (systemd's), a mount in the run dir is
/// copied to every peer and slave of /run: each netns would be mounted
/// twice on the host (once out of sight) and held alive by any namespace
/// that copied it. The daemon's directories for them are private mounts.
#[test]
fn a_shared_run_dir_gets_one_mount_per_namespace_and_shares_none() {
    let mut d = Daemon::start();
    d.restart_with_shared_run_dir();
    d.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "100"]);
    let netns = d.run_dir().join("netns");
    let ns = netns.join(id_of(&d, "c"));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let at = |p: &std::path::Path| {
        info.lines().filter(|l| l.split(' ').nth(4) == Some(p.to_str().unwrap())).collect::<Vec<_>>()
    };
    assert_eq!(at(&ns).len(), 1, "one mount of the container's netns:\n{info}");
    let dir = at(&netns);
    assert_eq!(dir.len(), 1, "the netns dir is a mount of its own:\n{info}");
    assert!(!dir[0].contains(" shared:") && !dir[0].contains(" master:"), "the netns dir is private: {}", dir[0]);
    d.ok(&["rm", "-f", "c"]);
    let run = d.run_dir().display().to_string();
    assert_eq!(d.leftovers().into_iter().filter(|m| *m != run).collect::<Vec<_>>(), Vec::<String>::new());
}

#[test]
fn passwd_in_the_container_cannot_hang_or_redirect_the_daemon() {
    let d = Daemon::start();
    d.ok(&["run", "--name", "fifo", "-u", "root", "busybox", "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd"]);
    d.ok(&[
        "run",
        "--name",
        "link",
        "-u",
        "root",
        "busybox",
        "sh",
        "-c",
        "rm /etc/passwd && ln -s /etc/shadow /etc/passwd",
    ]);
    let out = d.ctl(&["start", "fifo"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
    // The host's /etc/shadow would give uid 0's "last change" day as uid;
    // inside the container the link points at a file that does not exist.
    let out = d.ctl(&["start", "link"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("unable to find user root"), "{out:?}");
    d.ok(&["run", "-d", "--name", "live", "busybox", "sleep", "60"]);
    d.ok(&["exec", "live", "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd"]);
    let out = d.ctl(&["exec", "-u", "root", "live", "id"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
    d.ok(&["version"]);
    d.ok(&["ps"]);
}

#[test]
fn namespaces_cannot_be_made_inside_a_container() {
    let d = Daemon::start();
    import_tools(&d);
    let out = d.ok(&["run", "--rm", "tools", "clone-probe"]);
    assert_eq!(out, "clone: EPERM\nclone3: ENOSYS\n");
    // Ordinary threads and processes still start.
    let out = d.ok(&["run", "--rm", "busybox", "sh", "-c", "(echo child) & wait"]);
    assert_eq!(out, "child\n");
}

#[test]
fn processes_start_with_default_signals_and_umask() {
    let d = Daemon::start();
    let out = d.ok(&["run", "--rm", "busybox", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    assert_eq!(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    d.ok(&["run", "-d", "--name", "s", "busybox", "sleep", "60"]);
    let out = d.ok(&["exec", "s", "grep", "-E", "^SigIgn", "/proc/self/status"]);
    assert_eq!(out, "SigIgn:\t0000000000000000\n");
    assert_eq!(d.ok(&["run", "--rm", "busybox", "sh", "-c", "umask"]), "0022\n");
    // A closed pipe ends the writer, as outside a container.
    let out = d.ok(&["run", "--rm", "busybox", "sh", "-c", "yes | head -n 1; echo done"]);
    assert_eq!(out, "y\ndone\n");
}

#[test]
fn names_and_environments_are_checked_before_anything_is_made() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        (&["--hostname", "h\n6.6.6.6 injected"], "invalid hostname"),
        (&["--hostname", &"a".repeat(300)], "longer than 63"),
        (&["--add-host", "evil\n6.6.6.6 injected:1.2.3.4"], "invalid --add-host name"),
        (&["-e", "=x"], "invalid environment variable"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = d.ctl(&args);
        assert_eq!(out.code, 125, "{flags:?}: {out:?}");
        assert!(out.stderr.contains(expected), "{flags:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    }
    d.ok(&["run", "-d", "--name", "s", "busybox", "sleep", "60"]);
    let out = d.ctl(&["exec", "-e", "=x", "s", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("invalid environment variable"), "{out:?}");
    // 100k variables are refused at once, not stored.
    let env: Vec<String> = (0..100_000).map(|i| format!("V{i}=1")).collect();
    let mut args: Vec<&str> = vec!["run", "--rm"];
    args.extend(env.iter().flat_map(|e| ["-e", e.as_str()]));
    args.extend(["busybox", "true"]);
    let out = with_big_stack(d.ctl_cmd(&args));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(out.stderr.contains("too many environment variables"), "{}", out.stderr);
    assert_eq!(d.container_ids().len(), 1, "nothing but s was created");
    // A large environment does not break the list for everyone.
    // (7 x 660 kB is past the 4 MiB message limit).
    let env: Vec<String> = (0..10_000).map(|i| format!("VARIABLE_{i}={}", "x".repeat(50))).collect();
    let mut args: Vec<&str> = vec!["create"];
    args.extend(env.iter().flat_map(|e| ["-e", e.as_str()]));
    args.extend(["busybox", "true"]);
    for _ in 0..7 {
        d.ok(&args);
    }
    let out = d.ctl(&["ps", "-a", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(d.container_ids().len(), 8);
}

#[test]
fn bad_input_gets_a_clear_error() {
    let d = Daemon::start();
    let out = d.ctl(&["run", "--rm", "-p", "192.0.2.1:18510:80", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("not an address of this host"), "{out:?}");
    // docker creates a missing working directory.
    assert_eq!(d.ok(&["run", "--rm", "-w", "/nonexist/deep", "busybox", "pwd"]), "/nonexist/deep\n");
    // Output cut short by its reader ends the client quietly.
    d.ok(&["create", "busybox", "true"]);
    let mut child =
        d.ctl_cmd(&["ps", "-a", "--format", "json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_daemon_started_with_ip_netns_exec_says_how_to_start_it() {
    let ns = integration_tests::Netns::new(&integration_tests::unique("rt"));
    let dir = std::env::temp_dir().join(&ns.name);
    let bin = integration_tests::bin_dir().join("runtimed");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(bin)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--socket")
        .arg(dir.join("s.sock"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("nsenter --net="), "{stderr}");
}

#[test]
fn reserved_subnets_are_refused() {
    let d = Daemon::start();
    for (subnet, kind) in [("224.1.0.0/24", "multicast"), ("127.9.0.0/24", "loopback")] {
        let out = d.ctl(&["network", "create", "--subnet", subnet, "bad"]);
        assert_eq!(out.code, 125, "{out:?}");
        assert!(out.stderr.contains(kind), "{out:?}");
    }
}

#[test]
fn stop_and_rm_end_every_process_of_the_container() {
    let d = Daemon::start();
    // The init forwards nothing and a child ignores SIGTERM.
    let script = "trap '' TERM; (trap '' TERM; sleep 600) & sleep 600";
    d.ok(&["run", "-d", "--name", "stubborn", "busybox", "sh", "-c", script]);
    d.ok(&["stop", "-t", "1", "stubborn"]);
    for cg in d.cgroups() {
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
        assert!(procs.trim().is_empty(), "processes left after stop: {procs}");
    }
    d.ok(&["start", "stubborn"]);
    d.ok(&["rm", "-f", "stubborn"]);
    assert!(d.cgroups().is_empty(), "cgroups left: {:?}", d.cgroups());
}

#[test]
fn the_command_line_parses_like_dockers() {
    let d = Daemon::start();
    let out = d.ctl(&["run", "--restart=always", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.starts_with("runtimectl: unknown flag: --restart\n"), "{out:?}");
    let out =
        d.ok(&["run", "--rm=true", "-eGREETING=hi", "busybox", "sh", "-c", "echo -n $GREETING; echo -e ' there'"]);
    assert_eq!(out, "hi there\n");
    assert!(d.container_ids().is_empty(), "--rm=true removed it");
}

#[test]
fn ctrl_c_on_a_foreground_run_reaches_the_container() {
    use std::io::{BufRead, BufReader};
    let d = Daemon::start();
    let script = "trap 'echo got INT; exit 3' INT; echo ready; while true; do sleep 0.1; done";
    let mut child =
        d.ctl_cmd(&["run", "--name", "fg", "busybox", "sh", "-c", script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(lines.next().unwrap().unwrap(), "got INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the client exits with the container's code");
    assert_eq!(d.inspect("fg")["State"]["Running"], false, "the container stopped");
}

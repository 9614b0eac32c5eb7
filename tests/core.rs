//! Core runtime: containers through `runtimectl` and a real daemon.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use integration_tests::{wait_for, Daemon};

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, Duration::from_secs(20), || cond().then_some(()));
}

#[test]
fn run_prints_output_and_exits_with_the_container_code() {
    let d = Daemon::start();
    let out = d.ctl(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "hello\n"), "{out:?}");
    let out = d.ctl(&["run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3"]);
    assert_eq!(out.code, 3);
    assert_eq!(out.stderr, "oops\n");
    assert!(d.container_ids().is_empty(), "--rm containers are gone");
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

#[test]
fn missing_or_unexecutable_commands_exit_127_and_126_leaving_nothing() {
    let d = Daemon::start();
    let out = d.ctl(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(out.stderr.contains("no-such-command") && out.stderr.contains("not found"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one error line: {out:?}");
    assert_eq!(out.stderr, "runtimectl: exec: \"no-such-command\": executable file not found in $PATH\n");
    let out = d.ctl(&["run", "--name", "noexec", "busybox", "/etc/passwd"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert!(d.container_ids().is_empty(), "a run that cannot start leaves no container");
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

#[test]
fn container_settings_reach_the_process() {
    let d = Daemon::start();
    let script = "echo $FOO; pwd; id -u; id -g; hostname; touch /x 2>/dev/null && echo rw || echo ro";
    let out = d.ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "www-data",
        "--hostname",
        "box1",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "bar\n/tmp\n33\n33\nbox1\nro\n");
    let out = d.ok(&["run", "--rm", "busybox", "sh", "-c", "touch /x && echo rw; id -u"]);
    assert_eq!(out, "rw\n0\n");
}

#[test]
fn default_capabilities_are_dockers_not_all() {
    let d = Daemon::start();
    let out = d.ok(&["run", "--rm", "busybox", "grep", "^Cap", "/proc/self/status"]);
    // chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    let status = d.ok(&["run", "--rm", "busybox", "grep", "-E", "NoNewPrivs|Seccomp:", "/proc/self/status"]);
    assert!(status.contains("NoNewPrivs:\t1") && status.contains("Seccomp:\t2"), "{status}");
    // Masked and read-only paths as runc's default spec.
    let out = d.ctl(&["run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/domainname"]);
    assert_ne!(out.code, 0, "/proc/sys is read-only");
    let timers = d.ok(&["run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/timer_list"]);
    assert_eq!(timers.trim(), "0", "/proc/timer_list is masked");
    let firmware = d.ok(&["run", "--rm", "busybox", "ls", "/sys/firmware"]);
    assert_eq!(firmware, "", "/sys/firmware is masked");
    // The seccomp profile refuses mount even though the shell is root.
    let out = d.ctl(&["run", "--rm", "busybox", "mount", "-t", "tmpfs", "t", "/mnt"]);
    assert_ne!(out.code, 0, "{out:?}");
}

#[test]
fn network_none_has_only_loopback_up_and_host_sees_host_links() {
    let d = Daemon::start();
    d.ns.exec("ip link add rtveth0 type veth peer name rtveth1");
    let none = d.ok(&["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]);
    let links: Vec<&str> = none.lines().collect();
    assert_eq!(links.len(), 1, "{none}");
    assert!(links[0].starts_with("1: lo:") && links[0].contains("UP"), "{none}");
    let addr = d.ok(&["run", "--rm", "busybox", "ip", "-o", "-4", "addr"]);
    assert!(addr.contains("127.0.0.1/8"), "{addr}");
    let host = d.ok(&["run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"]);
    assert!(host.contains("rtveth0"), "host mode sees the host's links: {host}");
    let c = d.inspect(d.ok(&["create", "--network", "none", "busybox"]).trim());
    let sandbox = c["NetworkSettings"]["SandboxKey"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&sandbox).exists());
    d.ok(&["rm", c["Id"].as_str().unwrap()]);
    assert!(!std::path::Path::new(&sandbox).exists(), "rm removes the namespace");
}

#[test]
fn detached_container_survives_daemon_kill_and_stop_records_exit() {
    let mut d = Daemon::start();
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    d.ok(&["run", "-d", "--name", "svc", "busybox", "sh", "-c", script]);
    let pid = d.inspect("svc")["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    // Only the container's mount namespaces hold its rootfs: the host's
    // table stays the same size however many containers run.
    let rootfs_mounts = |d: &Daemon| d.mounts().into_iter().filter(|m| m.ends_with("/rootfs")).count();
    assert_eq!(rootfs_mounts(&d), 0, "{:?}", d.mounts());
    d.ok(&["exec", "svc", "sh", "-c", "echo kept > /kept"]);
    d.kill9();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "container outlives the daemon");
    d.spawn();
    let c = d.inspect("svc");
    assert_eq!(c["State"]["Status"], "running");
    assert_eq!(c["State"]["Pid"].as_i64().unwrap(), pid, "same pid after restart");
    assert_eq!(d.container_ids().len(), 1, "nothing duplicated");
    d.ok(&["stop", "-t", "5", "svc"]);
    let c = d.inspect("svc");
    assert_eq!(c["State"]["Status"], "exited");
    assert_eq!(c["State"]["ExitCode"], 0, "the TERM trap's exit code is recorded");
    d.ok(&["start", "svc"]);
    assert_eq!(d.inspect("svc")["State"]["Status"], "running", "an exited container starts again");
    assert_eq!(d.ok(&["exec", "svc", "cat", "/kept"]), "kept\n", "the writable layer outlives a restart");
    assert_eq!(rootfs_mounts(&d), 0, "{:?}", d.mounts());
    d.ok(&["kill", "svc"]);
    assert_eq!(d.ok(&["wait", "svc"]).trim(), "137");
}

#[test]
fn exit_while_daemon_is_down_is_recorded_on_restart() {
    let mut d = Daemon::start();
    // "old" stands for a container whose shim an older daemon started: it
    // wrote its exit status in the root dir, not in the bundle.
    let mut exits = Vec::new();
    for (name, code) in [("short", 7), ("old", 9)] {
        d.ok(&["run", "-d", "--name", name, "busybox", "sh", "-c", &format!("sleep 1; exit {code}")]);
        let c = d.inspect(name);
        exits.push((c["Id"].as_str().unwrap().to_string(), c["State"]["Pid"].as_i64().unwrap()));
    }
    d.kill9();
    for (_, pid) in &exits {
        wait_until("container exit", || !std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    let in_bundle = |id: &str| d.bundles_dir().join(id).join("exit.json");
    wait_until("exit files", || exits.iter().all(|(id, _)| in_bundle(id).is_file()));
    let (old_id, _) = &exits[1];
    let old_place = d.root().join("containers").join(old_id).join("exit.json");
    std::fs::copy(in_bundle(old_id), &old_place).unwrap();
    std::fs::remove_file(in_bundle(old_id)).unwrap();
    d.spawn();
    for (name, code) in [("short", 7), ("old", 9)] {
        let c = d.inspect(name);
        assert_eq!(
            (c["State"]["Status"].as_str(), c["State"]["ExitCode"].as_i64()),
            (Some("exited"), Some(code)),
            "{name}"
        );
        d.ok(&["rm", name]);
    }
    assert!(!old_place.exists(), "rm removes an exit file in the old place too");
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

/// The inode flags of `path` (FS_IOC_GETFLAGS), if its filesystem has them.
fn inode_flags(path: &std::path::Path) -> Option<libc::c_int> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(path).ok()?;
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int at the pointer.
    (unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } == 0).then_some(flags)
}

#[test]
fn on_ext4_the_containers_dir_spreads_its_layers_over_the_disk() {
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    let d = Daemon::start();
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"]), "ok\n");
    let dir = d.root().join("containers");
    let fs = fs_type(&dir);
    if fs != Some(EXT4_SUPER_MAGIC) {
        eprintln!("the test's root dir is not on ext4 ({fs:?}): only the run above is checked");
        return;
    }
    let flags = inode_flags(&dir).expect("ext4 has inode flags");
    assert_ne!(flags & FS_TOPDIR_FL, 0, "containers dir flags {flags:#x}: no T attribute");
}

/// The filesystem type of `path` (statfs's f_type).
fn fs_type(path: &std::path::Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs fills the struct it is given.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

#[test]
fn exec_runs_in_the_container_and_returns_output_and_code() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "box", "--hostname", "inside", "busybox", "sleep", "300"]);
    let out = d.ctl(&["exec", "box", "sh", "-c", "hostname; echo err >&2; exit 4"]);
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (4, "inside\n", "err\n"));
    // Same pid namespace: the container's init is pid 1 for the exec'd process.
    let ps = d.ok(&["exec", "box", "cat", "/proc/1/cmdline"]);
    assert!(ps.starts_with("sleep"), "{ps}");
    let user = d.ok(&["exec", "-u", "www-data", "-e", "X=1", "-w", "/tmp", "box", "sh", "-c", "id -u; echo $X; pwd"]);
    assert_eq!(user, "33\n1\n/tmp\n");
    assert_eq!(d.ctl(&["exec", "box", "nope"]).code, 127);
    d.ok(&["kill", "box"]);
    d.ok(&["wait", "box"]);
    let out = d.ctl(&["exec", "box", "true"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("not running"), "{out:?}");
}

#[test]
fn logs_tail_and_follow() {
    let d = Daemon::start();
    let script = "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo bad >&2";
    d.ok(&["run", "-d", "--name", "talker", "busybox", "sh", "-c", script]);
    let follow = d.ctl_cmd(&["logs", "-f", "talker"]).output().expect("logs -f");
    assert!(follow.status.success());
    assert_eq!(String::from_utf8_lossy(&follow.stdout), "line1\nline2\nline3\n");
    assert_eq!(String::from_utf8_lossy(&follow.stderr), "bad\n");
    let tail = d.ctl(&["logs", "--tail", "2", "talker"]);
    assert_eq!((tail.stdout.as_str(), tail.stderr.as_str()), ("line3\n", "bad\n"));
}

#[test]
fn events_report_the_lifecycle() {
    let d = Daemon::start();
    let mut events =
        d.ctl_cmd(&["events", "--format", "json"]).stdout(std::process::Stdio::piped()).spawn().expect("events");
    std::thread::sleep(Duration::from_millis(300));
    d.ok(&["run", "--rm", "--name", "ev", "busybox", "true"]);
    let reader = BufReader::new(events.stdout.take().unwrap());
    let mut actions = Vec::new();
    for line in reader.lines() {
        let e: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        assert_eq!(e["Name"], "ev");
        actions.push(e["Action"].as_str().unwrap().to_string());
        if actions.last().map(String::as_str) == Some("destroy") {
            break;
        }
    }
    let _ = events.kill();
    let _ = events.wait();
    assert_eq!(actions, ["create", "attach", "start", "die", "destroy"], "docker's order for a foreground run");
}

#[test]
fn images_import_list_and_remove() {
    let d = Daemon::start();
    let images: serde_json::Value = serde_json::from_str(&d.ok(&["image", "ls", "--format", "json"])).unwrap();
    let busybox = images.as_array().unwrap().iter().find(|i| i["Name"] == "busybox").expect("busybox built");
    let rootfs = d.root().join("images").join(busybox["ID"].as_str().unwrap()).join("rootfs");
    let tar = d.dir.join("box.tar");
    integration_tests::sh(&format!("tar -C {} -cf {} .", rootfs.display(), tar.display()));
    d.ok(&["image", "import", "mybox", tar.to_str().unwrap()]);
    assert!(d.ok(&["image", "ls"]).contains("mybox"));
    assert_eq!(d.ok(&["run", "--rm", "mybox", "echo", "from mybox"]), "from mybox\n");
    // An imported tarball has no config, so no default command (docker's rule).
    let out = d.ctl(&["run", "--rm", "mybox"]);
    assert_eq!((out.code, out.stderr.as_str()), (125, "runtimectl: no command specified\n"), "{out:?}");
    d.ok(&["create", "--name", "user", "mybox", "true"]);
    let out = d.ctl(&["image", "rm", "mybox"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("(must force): image is being used by stopped container user"), "{out:?}");
    d.ok(&["rm", "user"]);
    d.ok(&["image", "rm", "mybox"]);
    assert!(!d.ok(&["image", "ls"]).contains("mybox"));

    // rmi -f, as docker: a stopped container's image loses its name and
    // stays for it; a running container's image is never removed.
    d.ok(&["image", "import", "mybox", tar.to_str().unwrap()]);
    d.ok(&["create", "--name", "user", "mybox", "echo", "still runs"]);
    assert_eq!(d.ok(&["rmi", "-f", "mybox"]).trim(), "Untagged: mybox");
    assert!(d.ok(&["images"]).lines().any(|l| l.starts_with("<none>")), "kept, dangling");
    assert_eq!(d.ok(&["start", "-a", "user"]), "still runs\n");
    d.ok(&["image", "import", "mybox", tar.to_str().unwrap()]);
    d.ok(&["run", "-d", "--name", "live", "mybox", "sleep", "300"]);
    let out = d.ctl(&["rmi", "-f", "mybox"]);
    assert!(out.stderr.contains("(cannot be forced): image is being used by running container live"), "{out:?}");
    d.ok(&["rm", "-f", "user", "live"]);
    d.ok(&["image", "prune", "-f"]);
    assert!(!d.ok(&["images"]).lines().any(|l| l.starts_with("<none>")), "prune takes it once unused");
    d.ok(&["rmi", "mybox"]);
    let bad = d.dir.join("bad.tar");
    std::fs::write(&bad, b"this is not a tarball").unwrap();
    let out = d.ctl(&["image", "import", "broken", bad.to_str().unwrap()]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(!d.ok(&["image", "ls"]).contains("broken"));
    let leftovers = integration_tests::image_dirs(&d);
    assert_eq!(leftovers.len(), 1, "only busybox's directory remains: {leftovers:?}");
}

#[test]
fn images_import_from_gzip_zstd_xz_and_stdin() {
    let d = Daemon::start();
    let rootfs = integration_tests::image_dirs(&d)[0].join("rootfs");
    let tar = d.dir.join("box.tar");
    integration_tests::sh(&format!("tar -C {} -cf {} .", rootfs.display(), tar.display()));
    for (tool, ext) in [("gzip", "gz"), ("zstd -q", "zst"), ("xz", "xz")] {
        let packed = d.dir.join(format!("box.tar.{ext}"));
        integration_tests::sh(&format!("{tool} -c {} > {}", tar.display(), packed.display()));
        let name = format!("from-{ext}");
        d.ok(&["image", "import", &name, packed.to_str().unwrap()]);
        assert_eq!(d.ok(&["run", "--rm", "--network", "none", &name, "echo", "ok"]), "ok\n", "{ext}");
    }
    let gz = std::fs::File::open(d.dir.join("box.tar.gz")).unwrap();
    let out = d.ctl_cmd(&["image", "import", "from-stdin", "-"]).stdin(gz).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "from-stdin", "echo", "ok"]), "ok\n");
    // A compressed stream that breaks off is refused and leaves nothing.
    let cut = d.dir.join("cut.tar.gz");
    let whole = std::fs::read(d.dir.join("box.tar.gz")).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = d.ctl(&["image", "import", "cut", cut.to_str().unwrap()]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(!d.ok(&["image", "ls"]).contains("cut"));
    assert_eq!(integration_tests::image_dirs(&d).len(), 5, "busybox and four imports, no partial image");
}

#[test]
fn an_image_whose_rootfs_is_missing_fails_cleanly() {
    let d = Daemon::start();
    let rootfs = integration_tests::image_dirs(&d)[0].join("rootfs");
    let tar = d.dir.join("box.tar");
    integration_tests::sh(&format!("tar -C {} -cf {} .", rootfs.display(), tar.display()));
    let id = d.ok(&["image", "import", "fragile", tar.to_str().unwrap()]).trim().to_string();
    std::fs::remove_dir_all(d.root().join("images").join(&id).join("rootfs")).unwrap();
    let out = d.ctl(&["run", "--rm", "fragile", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("rootfs") && out.stderr.contains("missing"), "{out:?}");
    assert!(d.container_ids().is_empty());
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

#[test]
fn bad_input_gets_one_clear_error_and_leaves_nothing() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        // (--pull never: tests never reach Docker Hub.)
        (&["run", "--pull", "never", "no-such-image"], "No such image: no-such-image"),
        (&["run", "--name", "bad name", "busybox"], "invalid container name"),
        (&["run", "--network", "nowhere", "busybox"], "network nowhere not found"),
        (&["run", "-w", "relative", "busybox"], "absolute path"),
        (&["run", "-u", "nobody-here", "busybox", "true"], "unable to find user nobody-here"),
        (&["stop", "ghost"], "No such container: ghost"),
        (&["rm", "ghost"], "No such container: ghost"),
    ];
    for (args, expected) in cases {
        let out = d.ctl(args);
        assert_eq!(out.code, 125, "{args:?}: {out:?}");
        assert!(out.stderr.contains(expected), "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: one line: {out:?}");
    }
    d.ok(&["create", "--name", "dup", "busybox"]);
    let out = d.ctl(&["create", "--name", "dup", "busybox"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("already in use"), "{out:?}");
    d.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "300"]);
    let out = d.ctl(&["kill", "-s", "NOSIG", "busy"]);
    assert!(out.code == 125 && out.stderr.contains("invalid signal"), "{out:?}");
    let out = d.ctl(&["rm", "busy"]);
    assert!(out.code == 125 && out.stderr.contains("stop it first"), "{out:?}");
    assert_eq!(d.container_ids().len(), 2, "only dup and busy exist");
    d.ok(&["rm", "-f", "busy", "dup"]);
    assert!(d.leftovers().is_empty(), "leftovers: {:?}", d.leftovers());
}

#[test]
fn a_daemon_that_is_not_running_is_a_clear_125() {
    let d = Daemon::start();
    let missing = format!("unix://{}/nothing.sock", d.dir.display());
    let out = std::process::Command::new(integration_tests::bin_dir().join("runtimectl"))
        .env("RUNTIMED_HOST", &missing)
        .args(["ps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Cannot connect to the runtime daemon") && err.lines().count() == 1, "{err}");
}

#[test]
fn containers_are_found_by_name_and_id_prefix() {
    let d = Daemon::start();
    let id = d.ok(&["create", "--name", "findme", "busybox", "true"]).trim().to_string();
    assert_eq!(d.inspect(&id[..6])["Name"], "findme");
    assert_eq!(d.inspect("findme")["Id"], id.as_str());
    let ps: serde_json::Value = serde_json::from_str(&d.ok(&["ps", "-a", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Names"], "findme");
    assert_eq!(ps[0]["State"], "created");
    assert!(d.ok(&["ps"]).lines().count() == 1, "only the header: created is not running");
    d.ok(&["start", "findme"]);
    assert_eq!(d.ok(&["wait", "findme"]).trim(), "0");
}

#[test]
fn logs_take_timestamps_since_until_and_n() {
    let d = Daemon::start();
    d.ok(&["run", "--name", "talker", "busybox", "sh", "-c", "echo one; echo two; echo three"]);
    assert_eq!(d.ok(&["logs", "-n", "1", "talker"]), "three\n");
    let stamped = d.ok(&["logs", "-t", "talker"]);
    let first = stamped.lines().next().unwrap();
    let (time, text) = first.split_once(' ').unwrap();
    assert!(time.starts_with("20") && time.ends_with('Z') && text == "one", "{stamped}");
    assert_eq!(d.ok(&["logs", "--since", "1h", "talker"]), "one\ntwo\nthree\n");
    assert_eq!(d.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "talker"]), "");
    assert_eq!(d.ok(&["logs", "--until", "1h", "talker"]), "");
    let out = d.ctl(&["logs", "--since", "yesterday-ish", "talker"]);
    assert_eq!(out.code, 125, "{out:?}");
}

/// `--security-opt seccomp=unconfined` runs without docker's syscall
/// filter (as docker does); the default keeps it; options this runtime
/// does not apply are refused in one line, never ignored.
#[test]
fn security_opt_turns_the_syscall_filter_off_and_refuses_the_rest() {
    let d = Daemon::start();
    let mode = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "grep", "^Seccomp:", "/proc/self/status"]);
        d.ok(&args).split_whitespace().nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(mode(&[]), "2", "filtered by default");
    assert_eq!(mode(&["--security-opt", "seccomp=unconfined"]), "0");
    let out = d.ctl(&["run", "--rm", "--security-opt", "apparmor=unconfined", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("unsupported security option \"apparmor=unconfined\""), "{out:?}");
    assert!(d.container_ids().is_empty(), "nothing created");
}

/// The mounts under the daemon's dirs in the mount namespace of the shim
/// of container `name` (the parent of its first process).
fn shim_mounts(d: &Daemon, name: &str) -> Vec<String> {
    let pid = d.inspect(name)["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).unwrap().trim().to_string();
    let info = std::fs::read_to_string(format!("/proc/{ppid}/mountinfo")).unwrap();
    let dir = d.dir.display().to_string();
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&dir)).map(String::from).collect()
}

/// What the shim of container `name` logged (warnings and errors).
fn shim_log(d: &Daemon, name: &str) -> String {
    let id = d.inspect(name)["Id"].as_str().unwrap().to_string();
    std::fs::read_to_string(d.bundles_dir().join(id).join("shim.log")).unwrap_or_default()
}

/// A shim's mount namespace is a copy of the daemon's template, which has
/// none of the containers' mounts and none of the host's that a start does
/// not use (each start would copy them all): it holds its own container's
/// rootfs and netns, nothing of the others', and so does a shim started
/// after the daemon made a new template at restart, with a host mount
/// there that is not the daemon's.
#[test]
fn a_shim_holds_its_own_containers_mounts_and_no_others() {
    let mut d = Daemon::start();
    let expect = |d: &Daemon, name: &str| {
        let id = d.inspect(name)["Id"].as_str().unwrap().to_string();
        let rootfs = d.bundles_dir().join(&id).join("rootfs").display().to_string();
        let netns = d.run_dir().join("netns").join(&id).display().to_string();
        let mut want = vec![rootfs, netns];
        want.sort();
        let mut got = shim_mounts(d, name);
        got.sort();
        assert_eq!(got, want, "{name}'s shim");
    };
    for name in ["a", "b", "c"] {
        d.ok(&["run", "-d", "--name", name, "busybox", "sleep", "600"]);
    }
    d.stop();
    // Under the test's dir, so that the harness unmounts it whatever happens.
    let foreign = d.dir.join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    integration_tests::sh(&format!("mount -t tmpfs tmpfs {}", foreign.display()));
    d.spawn();
    d.ok(&["run", "-d", "--network", "none", "--name", "d", "busybox", "sleep", "600"]);
    assert!(d.mounts().contains(&foreign.display().to_string()), "the host has {}", foreign.display());
    for name in ["a", "b", "c", "d"] {
        expect(&d, name);
    }
    // The template is there, and no shim fell back to the host's namespace.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let template = d.mount_template().display().to_string();
    let at = info.lines().filter(|l| l.split(' ').nth(4) == Some(template.as_str())).collect::<Vec<_>>();
    assert!(at.len() == 1 && at[0].contains(" - nsfs "), "one mount namespace at {template}: {at:?}");
    for name in ["a", "b", "c", "d"] {
        let log = shim_log(&d, name);
        assert!(!log.contains("detaching the other containers' mounts instead"), "{name}'s shim: {log}");
    }
    d.ok(&["rm", "-f", "a", "b", "c", "d"]);
    integration_tests::sh(&format!("umount {}", foreign.display()));
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

/// A template gone behind the daemon's back (unmounted by hand) costs a
/// start its speed, not the container: the shim copies the host's
/// namespace and detaches the other containers' mounts, as before there
/// was a template.
#[test]
fn a_shim_without_the_template_falls_back_to_the_hosts_mounts() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "a", "busybox", "sleep", "600"]);
    integration_tests::sh(&format!("umount {}", d.mount_template().display()));
    d.ok(&["run", "-d", "--name", "b", "busybox", "sleep", "600"]);
    let id = d.inspect("b")["Id"].as_str().unwrap().to_string();
    let mut want = vec![
        d.bundles_dir().join(&id).join("rootfs").display().to_string(),
        d.run_dir().join("netns").join(&id).display().to_string(),
    ];
    want.sort();
    let mut got = shim_mounts(&d, "b");
    got.sort();
    assert_eq!(got, want, "b's shim");
    let log = shim_log(&d, "b");
    assert!(log.contains("detaching the other containers' mounts instead"), "b's shim: {log}");
    assert_eq!(d.ok(&["exec", "b", "echo", "ok"]).trim(), "ok");
    d.ok(&["rm", "-f", "a", "b"]);
    assert_eq!(d.leftovers(), Vec::<String>::new());
}

/// A root dir reached through a symlink, on a filesystem of its own (as
/// /var/lib/runtimed linked to a data disk): the shims' mount template
/// keeps the mount it is really on, so containers log and exit as usual.
#[test]
fn a_root_dir_behind_a_symlink_on_another_mount_works() {
    let mut d = Daemon::start();
    d.stop();
    let (data, root) = (d.dir.join("data"), d.root());
    integration_tests::sh(&format!(
        "mkdir {0} && mount -t tmpfs tmpfs {0} && mkdir {0}/root && rm -rf {1} && ln -s {0}/root {1}",
        data.display(),
        root.display()
    ));
    d.spawn();
    let out = d.ctl(&["run", "--name", "c", "busybox", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!((out.code, out.stdout.as_str()), (3, "hi\n"), "{out:?}");
    assert_eq!(d.ok(&["logs", "c"]), "hi\n");
    d.ok(&["run", "-d", "--name", "s", "busybox", "sleep", "600"]);
    assert_eq!(d.ok(&["exec", "s", "echo", "ok"]).trim(), "ok");
    d.ok(&["rm", "-f", "c", "s"]);
    assert!(std::fs::read_dir(data.join("root/containers")).unwrap().next().is_none(), "no container dir left");
}

//! Interactive containers through a real pseudo-terminal, stdin piped
//! through `run -i` and `exec -i`, and output that arrives byte for byte.

use std::process::{Command, Stdio};
use std::time::Duration;

use integration_tests::{Daemon, Pty};

const T: Duration = Duration::from_secs(20);

fn on_pty(d: &Daemon, args: &[&str], rows: u16, cols: u16) -> Pty {
    let mut cmd = d.ctl_cmd(args);
    cmd.stdin(Stdio::null());
    Pty::spawn(cmd, rows, cols)
}

#[test]
fn a_tty_shell_types_resizes_detaches_and_reattaches() {
    let d = Daemon::start();
    let mut term = on_pty(&d, &["run", "-it", "--name", "shell", "--network", "none", "busybox", "sh"], 30, 100);
    term.expect("/ # ", T);
    term.send(b"echo $((6*7))\n");
    term.expect("\r\n42\r\n", T);
    term.send(b"stty size\n");
    term.expect("30 100", T);
    term.resize(50, 120);
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"stty size\n");
    term.expect("50 120", T);
    // Ctrl-C is a byte for the shell, not a signal for the client.
    term.send(b"sleep 30\n");
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"\x03");
    term.expect("^C", T);
    term.expect("/ # ", T);
    term.send(b"\x10\x11");
    assert_eq!(term.wait(T), 0, "ctrl-p ctrl-q detaches");
    assert_eq!(d.inspect("shell")["State"]["Running"], true, "the shell runs on after a detach");

    let mut again = on_pty(&d, &["attach", "shell"], 20, 60);
    again.send(b"echo back $((1+1))\n");
    again.expect("back 2", T);
    again.send(b"stty size\n");
    again.expect("20 60", T);
    again.send(b"exit 5\n");
    assert_eq!(again.wait(T), 5, "attach exits with the container's code");
    assert_eq!(d.inspect("shell")["State"]["ExitCode"], 5);
}

#[test]
fn several_clients_see_the_same_terminal() {
    let d = Daemon::start();
    d.ok(&["run", "-dit", "--name", "shared", "--network", "none", "busybox", "sh"]);
    let mut first = on_pty(&d, &["attach", "shared"], 24, 80);
    let mut second = on_pty(&d, &["attach", "shared"], 24, 80);
    std::thread::sleep(Duration::from_millis(500));
    first.send(b"echo from-first-$((3*3))\n");
    second.expect("from-first-9", T);
    first.expect("from-first-9", T);
    second.send(b"\x10\x11");
    assert_eq!(second.wait(T), 0);
    first.send(b"exit 2\n");
    assert_eq!(first.wait(T), 2);
}

#[test]
fn the_daemon_killed_while_attached_leaves_the_container_and_attach_works_after() {
    let mut d = Daemon::start();
    d.ok(&["run", "-dit", "--name", "keep", "--network", "none", "busybox", "sh"]);
    let mut term = on_pty(&d, &["attach", "keep"], 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"echo before\n");
    term.expect("before", T);
    d.kill9();
    assert_ne!(term.wait(T), 0, "the client reports the lost daemon");
    d.spawn();
    assert_eq!(d.inspect("keep")["State"]["Running"], true, "the container kept running");
    let mut term = on_pty(&d, &["attach", "keep"], 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"echo after $((2*3))\n");
    term.expect("after 6", T);
    term.send(b"exit 3\n");
    assert_eq!(term.wait(T), 3);
}

/// `runtimectl ARGS` with `input` on stdin; its stdout.
fn piped(d: &Daemon, args: &[&str], input: Stdio) -> (i32, Vec<u8>) {
    let out = d.ctl_cmd(args).stdin(input).stderr(Stdio::inherit()).output().expect("runtimectl");
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn sha256(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn file(path: &std::path::Path) -> Stdio {
    Stdio::from(std::fs::File::open(path).expect("open input"))
}

#[test]
fn stdin_and_output_pass_byte_for_byte() {
    let d = Daemon::start();
    let dir = d.dir.clone();
    let hi = dir.join("hi.txt");
    std::fs::write(&hi, "hi\n").unwrap();
    let run_i = ["run", "-i", "--rm", "--network", "none", "busybox", "cat"];
    assert_eq!(piped(&d, &run_i, file(&hi)), (0, b"hi\n".to_vec()));
    assert_eq!(piped(&d, &["run", "--rm", "--network", "none", "busybox", "cat"], file(&hi)), (0, Vec::new()));

    // 100 MB of random bytes through the container and back.
    let big = dir.join("big.bin");
    let status = Command::new("head").args(["-c", "100000000", "/dev/urandom"]).stdout(file_w(&big)).status();
    assert!(status.unwrap().success());
    let back = dir.join("back.bin");
    let status = d.ctl_cmd(&run_i).stdin(file(&big)).stdout(file_w(&back)).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(sha256(&back), sha256(&big), "run -i cat returns the same bytes");

    // A binary file comes out the size it is.
    let (code, out) = piped(&d, &["run", "--rm", "--network", "none", "busybox", "cat", "/bin/busybox"], Stdio::null());
    let size = d.ok(&["run", "--rm", "--network", "none", "busybox", "stat", "-c", "%s", "/bin/busybox"]);
    assert_eq!((code, out.len().to_string()), (0, size.trim().to_string()));
    // The log keeps the bytes too.
    d.ok(&["run", "--name", "binlog", "--network", "none", "busybox", "cat", "/bin/busybox"]);
    let (code, logged) = piped(&d, &["logs", "binlog"], Stdio::null());
    assert!(code == 0 && logged == out, "logs returned {} bytes for {}", logged.len(), out.len());

    d.ok(&["run", "-d", "--name", "web", "--network", "none", "busybox", "sleep", "300"]);
    assert_eq!(piped(&d, &["exec", "-i", "web", "cat"], file(&hi)), (0, b"hi\n".to_vec()));
    let inside = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "head -c 50000000 /dev/urandom > /tmp/f && sha256sum /tmp/f | cut -d' ' -f1",
    ]);
    let copy = dir.join("copy.bin");
    let status = d.ctl_cmd(&["exec", "web", "cat", "/tmp/f"]).stdout(file_w(&copy)).status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(sha256(&copy), inside.trim(), "streamed exec output matches the file inside");
    for f in [big, back, copy] {
        let _ = std::fs::remove_file(f);
    }
}

fn file_w(path: &std::path::Path) -> Stdio {
    Stdio::from(std::fs::File::create(path).expect("create output"))
}

#[test]
fn exec_takes_docker_flags() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "box", "--network", "none", "busybox", "sleep", "300"]);
    // -d returns at once; the process runs on.
    d.ok(&["exec", "-d", "box", "sh", "-c", "sleep 0.2; echo done > /tmp/marker"]);
    let mut seen = String::new();
    for _ in 0..50 {
        seen = d.ctl(&["exec", "box", "cat", "/tmp/marker"]).stdout;
        if seen == "done\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen, "done\n");
    // -t gives the process a terminal; without it, it has none.
    let out = d.ctl(&["exec", "-t", "box", "sh", "-c", "tty; echo $TERM"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("/dev/pts/") && out.stdout.contains("xterm"), "{out:?}");
    assert_eq!(d.ctl(&["exec", "box", "tty"]).code, 1, "no terminal without -t");
    // --privileged adds capabilities beyond docker's default set.
    let caps = |args: &[&str]| {
        let status = d.ok(args);
        let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap_or_default().to_string();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap_or("0"), 16).unwrap()
    };
    let default = caps(&["exec", "box", "cat", "/proc/self/status"]);
    let privileged = caps(&["exec", "--privileged", "box", "cat", "/proc/self/status"]);
    assert!(privileged.count_ones() > default.count_ones(), "{privileged:x} vs {default:x}");
    assert_eq!(default & (1 << 21), 0, "no CAP_SYS_ADMIN by default");
    assert_ne!(privileged & (1 << 21), 0, "CAP_SYS_ADMIN with --privileged");
    // A missing command is docker's 127 with docker's words.
    let out = d.ctl(&["exec", "box", "nosuch"]);
    assert_eq!(out.code, 127);
    assert_eq!(out.stderr, "runtimectl: exec: \"nosuch\": executable file not found in $PATH\n");
}

#[test]
fn start_attached_runs_with_its_output_and_code() {
    let d = Daemon::start();
    d.ok(&["create", "--name", "once", "--network", "none", "busybox", "sh", "-c", "echo started; exit 4"]);
    let out = d.ctl(&["start", "-a", "once"]);
    assert_eq!((out.code, out.stdout.as_str()), (4, "started\n"));
    let hi = d.dir.join("in.txt");
    std::fs::write(&hi, "typed\n").unwrap();
    d.ok(&["create", "-i", "--name", "cat", "--network", "none", "busybox", "cat"]);
    assert_eq!(piped(&d, &["start", "-ai", "cat"], file(&hi)), (0, b"typed\n".to_vec()));
    let out = d.ctl(&["attach", "once"]);
    assert_eq!(out.code, 125);
    assert!(out.stderr.contains("not running"), "{out:?}");
}

#[test]
fn exec_it_gives_a_shell_on_a_terminal() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "box", "--network", "none", "busybox", "sleep", "300"]);
    let mut term = on_pty(&d, &["exec", "-it", "box", "sh"], 25, 90);
    term.expect("# ", T);
    term.send(b"echo $((3+4))x; stty size\n");
    term.expect("7x", T);
    term.expect("25 90", T);
    term.resize(40, 100);
    std::thread::sleep(Duration::from_millis(300));
    term.send(b"stty size\n");
    term.expect("40 100", T);
    term.send(b"exit 3\n");
    assert_eq!(term.wait(T), 3);
    assert_eq!(d.inspect("box")["State"]["Running"], true, "the container runs on");
}

/// Bytes read by process `pid` so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.parse().ok()).expect("rchar")
}

/// A local `run` without a terminal hands the container's shim its own
/// stdio (the direct path); RUNTIMECTL_DIRECT_STDIO=0 keeps the daemon's
/// relay. Both give the same bytes, streams and exit code.
#[test]
fn direct_and_relayed_stdio_agree() {
    use std::io::Read;
    let d = Daemon::start();
    let hi = d.dir.join("hi.txt");
    std::fs::write(&hi, "hi\n").unwrap();
    d.ok(&["run", "-d", "--name", "web", "--network", "none", "busybox", "sleep", "300"]);
    for direct in ["1", "0"] {
        let script = "cat; echo err >&2; exit 3";
        let run = ["run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", script];
        streams_stay_apart(d.ctl_cmd(&run), direct, &d, &hi);
        streams_stay_apart(d.ctl_cmd(&["exec", "-i", "web", "sh", "-c", script]), direct, &d, &hi);

        // With the direct path the client reads none of the 10 MB itself.
        let script = "head -c 10000000 > /dev/null; echo got; cat";
        let run = ["run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", script];
        for args in [&run[..], &["exec", "-i", "web", "sh", "-c", script]] {
            let read = client_reads(d.ctl_cmd(args), direct);
            match direct {
                "1" => assert!(read < 1_000_000, "{}: the client read {read} bytes itself", args[0]),
                _ => assert!(read >= 10_000_000, "{}: the relaying client read only {read} bytes", args[0]),
            }
        }

        // A reader that leaves early ends the client by SIGPIPE, as it
        // would end docker's; the container runs on to its end.
        let mut child = run_sh_piped(&d, "head -c 20000000 /dev/zero; exit 4", direct);
        let mut head = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGPIPE), "direct={direct}");
        // A reader that took all the output and left before the end costs
        // nothing: no write was lost, and the code is the container's.
        let mut child = run_sh_piped(&d, "echo hi; sleep 1; exit 5", direct);
        let mut hi = [0u8; 3];
        child.stdout.take().unwrap().read_exact(&mut hi).unwrap();
        assert_eq!((child.wait().unwrap().code(), &hi), (Some(5), b"hi\n"), "direct={direct}");
    }
    d.ok(&["rm", "-f", "web"]);
    all_gone(&d);
}

/// Waits for the containers' `--rm` to be done; fails if one is left.
fn all_gone(d: &Daemon) {
    let deadline = std::time::Instant::now() + T;
    while !d.ok(&["ps", "-aq"]).trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "--rm left containers: {}", d.ok(&["ps", "-a"]));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client (`runtimectl ARGS`) in a mount namespace of its own, where the
/// daemon's bundles directory, and so every shim's socket, is hidden:
/// a client in a container that was given only the daemon's socket.
fn hiding_shims(d: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", r#"mount -t tmpfs none "$0" && exec "$@""#])
        .arg(d.bundles_dir())
        .arg(d.ctl_cmd(&[]).get_program())
        .args(args)
        .env("RUNTIMED_HOST", d.host())
        .stdin(Stdio::null());
    cmd
}

/// A client that cannot reach the shim's socket asks for the direct path
/// and then attaches through the daemon instead: the same bytes, streams
/// and exit code, and the client reads its input itself.
#[test]
fn a_client_that_cannot_reach_the_shim_attaches_instead() {
    let d = Daemon::start();
    let hi = d.dir.join("hi.txt");
    std::fs::write(&hi, "hi\n").unwrap();
    let run = ["run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "cat; echo err >&2; exit 3"];
    streams_stay_apart(hiding_shims(&d, &run), "1", &d, &hi);
    let run =
        ["run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "head -c 10000000 >/dev/null; echo got"];
    let read = client_reads(hiding_shims(&d, &run), "1");
    assert!(read >= 10_000_000, "the client read only {read} bytes: it was not relayed");
    all_gone(&d);
}

/// CLIENT (which runs `cat; echo err >&2; exit 3`) with `hi` on stdin: the
/// output goes on where the file's offset is, after what it holds; each
/// stream stays apart; the code is the process's.
fn streams_stay_apart(mut client: Command, direct: &str, d: &Daemon, hi: &std::path::Path) {
    use std::io::Seek;
    let what = format!("{client:?}");
    let (out, err) = (d.dir.join(format!("out-{direct}")), d.dir.join(format!("err-{direct}")));
    std::fs::write(&out, "before\n").unwrap();
    let mut out_file = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
    out_file.seek(std::io::SeekFrom::End(0)).unwrap();
    let status = client
        .env("RUNTIMECTL_DIRECT_STDIO", direct)
        .stdin(file(hi))
        .stdout(Stdio::from(out_file))
        .stderr(file_w(&err))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "{what}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "before\nhi\n", "{what}");
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "err\n", "{what}");
}

/// How many bytes CLIENT (running `...; echo got; cat`) has read itself
/// once the process has taken 10 MB of its stdin and says so.
fn client_reads(mut client: Command, direct: &str) -> u64 {
    use std::io::{BufRead, Read, Write};
    let mut child = client
        .env("RUNTIMECTL_DIRECT_STDIO", direct)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&vec![b'x'; 10_000_000]).unwrap();
        stdin
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "got\n");
    let read = bytes_read(child.id());
    drop(feeder.join().unwrap());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    read
}

/// `run --rm busybox sh -c SCRIPT` with its stdout piped to us.
fn run_sh_piped(d: &Daemon, script: &str, direct: &str) -> std::process::Child {
    let mut cmd = d.ctl_cmd(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", script]);
    cmd.env("RUNTIMECTL_DIRECT_STDIO", direct).stdout(Stdio::piped()).spawn().unwrap()
}

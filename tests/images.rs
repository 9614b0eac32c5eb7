//! Images from a real registry: Debian's docker-registry inside the
//! daemon's own namespace, test images built as OCI layouts and pushed by
//! skopeo, pulled and run through `runtimectl`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::http::get_from;
use integration_tests::oci::{self, Layout};
use integration_tests::{nginx, Bg, CuttingProxy, Daemon, Output, Registry, World, HOST_IP};

/// Pushes the test image (as `test:v1`), its multi-arch index (`multi:v1`)
/// and the image sharing its base layer (`second:v1`).
fn push_test_images(reg: &Registry) -> Layout {
    let layout = Layout::new();
    layout.add_image(&oci::test_image(), "v1");
    layout.add_index(&oci::test_index(), "multi");
    layout.add_image(&oci::shared_base_image(), "second");
    reg.push(layout.path(), "v1", "test:v1");
    reg.push(layout.path(), "multi", "multi:v1");
    reg.push(layout.path(), "second", "second:v1");
    layout
}

/// Entries of a directory under the daemon's image store.
fn entries(d: &Daemon, sub: &str) -> Vec<String> {
    let dir = d.root().join("images").join(sub);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A registry serving the test image as `test:v1`, and the file in its
/// storage holding the image's layer `n`, for tests to spoil.
fn served_layer(d: &Daemon, n: usize) -> (Registry, Layout, PathBuf) {
    let reg = Registry::start(&d.ns);
    let layout = Layout::new();
    let built = layout.add_image(&oci::test_image(), "v1");
    reg.push(layout.path(), "v1", "test:v1");
    let hex = built.layers[n].digest.trim_start_matches("sha256:").to_string();
    let data = reg.dir().join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    (reg, layout, data)
}

/// `runtimectl` keeping its credentials in its own docker config dir.
fn ctl_with_config<'a>(d: &'a Daemon, config: &'a Path) -> impl Fn(&[&str]) -> Output + 'a {
    move |args| d.ctl_cmd(args).env("DOCKER_CONFIG", config).output().expect("runtimectl").into()
}

fn failed(out: &Output, code: i32, words: &str) {
    assert_eq!(out.code, code, "{out:?}");
    assert!(out.stderr.contains(words), "expected \"{words}\" in: {out:?}");
    // Progress lines may come first; the error is one line, the last.
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("runtimectl:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {out:?}");
    assert_eq!(out.stderr.lines().last(), Some(errors[0]), "{out:?}");
}

#[test]
fn a_pulled_image_runs_with_its_config_and_its_layers_intact() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let image = reg.reference("test:v1");
    let out = d.ok(&["pull", &image]);
    assert!(out.contains(&format!("image is up to date for {image}")), "{out}");
    let images = d.ok(&["images"]);
    let row = images.lines().find(|l| l.starts_with(&reg.reference("test"))).expect(&images);
    assert_eq!(row.split_whitespace().nth(1), Some("v1"), "{images}");

    // Entrypoint, Cmd, Env and WorkingDir from the image.
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &image]), "hello from /srv\n");
    // A command replaces Cmd but keeps the entrypoint (sh -c).
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &image, "echo $GREETING again"]), "hello again\n");
    // --entrypoint replaces the entrypoint and drops Cmd.
    let out = d.ok(&["run", "--rm", "--network", "none", "--entrypoint", "/bin/cat", &image, "/etc/platform"]);
    assert_eq!(out.trim(), "linux/amd64");

    // Whiteouts, opaque directories, links and setuid bits as built.
    let script = "test ! -e /etc/deleted.txt && echo whiteout; ls /data/old; \
                  stat -c %a /bin/suid; readlink /srv/link; \
                  test $(stat -c %i /srv/hard) = $(stat -c %i /srv/index.html) && echo hardlink";
    let out = d.ok(&["run", "--rm", "--network", "none", &image, script]);
    assert_eq!(out, "whiteout\nc.txt\n4755\nindex.html\nhardlink\n", "{out}");

    // -P publishes what the image exposes (80/tcp) on a daemon-chosen port.
    d.ok(&["run", "-d", "--name", "web", "-P", &image, "sleep 300"]);
    let port = d.ok(&["port", "web"]);
    assert!(port.starts_with("80/tcp -> 0.0.0.0:"), "{port}");
    d.ok(&["rm", "-f", "web"]);
}

#[test]
fn shared_layers_are_stored_once_and_outlive_one_image() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    d.ok(&["pull", "-q", &reg.reference("test:v1")]);
    let before = entries(&d, "layers");
    assert_eq!(before.len(), 3, "{before:?}");
    // The second image has the first one's base layer and one of its own.
    let out = d.ctl(&["pull", &reg.reference("second:v1")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Already exists"), "{out:?}");
    assert_eq!(entries(&d, "layers").len(), 4);
    // system df counts the shared layer once: less than the two images' sizes.
    let images: serde_json::Value = serde_json::from_str(&d.ok(&["images", "--format", "json"])).unwrap();
    let pulled: u64 =
        images.as_array().unwrap().iter().filter(|i| i["Name"] != "busybox").map(|i| i["Size"].as_u64().unwrap()).sum();
    let df = d.ok(&["system", "df", "--format", "json"]);
    let row: serde_json::Value = serde_json::from_str(df.lines().next().unwrap()).unwrap();
    assert_eq!((row["Type"].as_str(), row["TotalCount"].as_u64()), (Some("Images"), Some(3)), "{df}");
    let busybox = images.as_array().unwrap().iter().find(|i| i["Name"] == "busybox").unwrap()["Size"].as_u64().unwrap();
    assert!(row["Size"].as_u64().unwrap() < pulled + busybox, "{df} vs {images}");
    assert!(d.ok(&["system", "df"]).contains("Images"));
    d.ok(&["rmi", &reg.reference("test:v1")]);
    let after = entries(&d, "layers");
    assert_eq!(after.len(), 2, "only the second image's layers stay: {after:?}");
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &reg.reference("second:v1")]), "second image\n");
    d.ok(&["rmi", &reg.reference("second:v1")]);
    assert!(entries(&d, "layers").is_empty());
    assert!(entries(&d, "blobs/sha256").is_empty(), "{:?}", entries(&d, "blobs/sha256"));
}

#[test]
fn multi_platform_images_resolve_to_this_machine_or_the_one_asked() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let image = reg.reference("multi:v1");
    // `run` of an image that is not here pulls it first, as docker does.
    let out = d.ctl(&["run", "--rm", "--network", "none", "--entrypoint", "cat", &image, "/etc/platform"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "linux/amd64");
    assert!(out.stderr.contains("Unable to find image"), "{out:?}");
    d.ok(&["pull", "--platform", "linux/arm64", &image]);
    let out = d.ok(&["run", "--rm", "--network", "none", "--entrypoint", "cat", &image, "/etc/platform"]);
    assert_eq!(out.trim(), "linux/arm64");
    failed(&d.ctl(&["pull", "--platform", "linux/s390x", &image]), 125, "no manifest for platform linux/s390x");
}

#[test]
fn registry_errors_are_one_clear_line_and_leave_nothing() {
    let d = Daemon::start();
    let mut reg = Some(Registry::start(&d.ns));
    let r = reg.as_ref().unwrap();
    let _layout = push_test_images(r);
    failed(&d.ctl(&["pull", &r.reference("test:nosuchtag")]), 125, "not found");
    failed(&d.ctl(&["pull", &r.reference("nosuchrepo")]), 125, "not found");
    failed(&d.ctl(&["pull", "Bad/Name"]), 125, "invalid reference format");
    let gone = r.reference("test:v1");
    reg.take();
    failed(&d.ctl(&["pull", &gone]), 125, "cannot reach registry");
    failed(&d.ctl(&["run", "--rm", "--pull", "never", &gone]), 125, "No such image");
    assert!(entries(&d, "layers").is_empty(), "{:?}", entries(&d, "layers"));
    assert!(entries(&d, "blobs/sha256").is_empty(), "{:?}", entries(&d, "blobs/sha256"));
}

#[test]
fn login_stores_credentials_that_pull_uses() {
    let d = Daemon::start();
    let reg = Registry::with_auth(&d.ns, "alice", "s3cret");
    let layout = Layout::new();
    layout.add_image(&oci::test_image(), "v1");
    let pushed = reg.try_push(layout.path(), "v1", "test:v1", Some("alice:s3cret"));
    assert_eq!(pushed.code, 0, "{pushed:?}");
    let config = d.dir.join("docker-config");
    let ctl = ctl_with_config(&d, &config);
    let image = reg.reference("test:v1");
    failed(&ctl(&["pull", &image]), 125, "unauthorized");
    failed(&ctl(&["login", "-u", "alice", "-p", "wrong", &reg.addr()]), 125, "incorrect username or password");
    assert!(!config.join("config.json").exists(), "nothing saved for a failed login");
    let out = ctl(&["login", "-u", "alice", "-p", "s3cret", &reg.addr()]);
    assert_eq!((out.code, out.stdout.trim()), (0, "Login Succeeded"), "{out:?}");
    let mode = std::fs::metadata(config.join("config.json"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.unwrap() & 0o777, 0o600);
    assert_eq!(ctl(&["pull", "-q", &image]).code, 0);
    assert_eq!(ctl(&["logout", &reg.addr()]).code, 0);
    assert!(!std::fs::read_to_string(config.join("config.json")).unwrap().contains(&reg.addr()));
    assert!(Path::new(&d.root()).exists());
}

#[test]
fn a_blob_with_other_bytes_than_its_digest_is_refused() {
    let d = Daemon::start();
    let (reg, _layout, data) = served_layer(&d, 2);
    // The registry now serves other bytes under the top layer's digest.
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    failed(&d.ctl(&["pull", &reg.reference("test:v1")]), 125, "Invalid digest");
    assert!(!d.ok(&["images"]).contains("5000/test"));
    assert!(entries(&d, "blobs/sha256").iter().all(|b| !b.starts_with(".tmp-")), "{:?}", entries(&d, "blobs/sha256"));
}

#[test]
fn a_pull_cut_off_by_a_crash_leaves_nothing_and_a_retry_works() {
    let mut d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let image = reg.reference("test:v1");
    for point in ["pull:downloaded", "pull:unpacked"] {
        d.stop();
        d.spawn_crashing_at(point);
        let out = d.ctl(&["pull", &image]);
        assert!(d.wait_exited(std::time::Duration::from_secs(20)), "{point}: no crash: {out:?}");
        d.spawn();
        assert!(entries(&d, "layers").is_empty(), "{point}: {:?}", entries(&d, "layers"));
        assert!(entries(&d, "blobs/sha256").is_empty(), "{point}: {:?}", entries(&d, "blobs/sha256"));
        let images = d.ok(&["images"]);
        assert!(!images.contains("5000/test"), "{point}: {images}");
    }
    d.ok(&["pull", "-q", &image]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &image]), "hello from /srv\n");
}

#[test]
fn tags_inspect_and_prune_like_docker() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let (test, second) = (reg.reference("test:v1"), reg.reference("second:v1"));
    d.ok(&["pull", "-q", &test]);
    d.ok(&["tag", &test, "mine:1"]);
    let images = d.ok(&["images"]);
    let ids: Vec<&str> = images
        .lines()
        .filter(|l| l.contains("5000/test") || l.starts_with("mine"))
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{images}");
    assert_eq!(ids[0], ids[1], "one image, two names: {images}");

    let v: serde_json::Value = serde_json::from_str(&d.ok(&["image", "inspect", "mine:1"])).unwrap();
    let i = &v[0];
    assert!(i["Id"].as_str().unwrap().starts_with("sha256:"), "{i}");
    let tags: Vec<&str> = i["RepoTags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(tags.contains(&"mine:1") && tags.contains(&test.as_str()), "{tags:?}");
    assert_eq!(i["Config"]["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(i["Config"]["WorkingDir"], "/srv");
    assert_eq!(i["Config"]["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    assert!(i["RepoDigests"][0].as_str().unwrap().contains("@sha256:"), "{i}");

    // history: the test image's three steps, newest first, with its id on top.
    let history = d.ok(&["history", "mine:1"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "a header and 3 steps: {history}");
    assert!(lines[1].starts_with(&ids[0][..12]) && lines[2].starts_with("<missing>"), "{history}");
    assert!(d.ok(&["image", "history", "busybox"]).contains("built from the host's busybox"));

    // rmi of one name only untags; the image runs on under the other.
    assert_eq!(d.ok(&["rmi", "mine:1"]).trim(), "Untagged: mine:1");
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &test]), "hello from /srv\n");

    // A name taken by another image leaves this one dangling; prune takes it.
    d.ok(&["pull", "-q", &second]);
    d.ok(&["tag", &second, &test]);
    assert!(d.ok(&["images"]).contains("<none>"));
    let out = d.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Deleted Images:") && out.contains("Total reclaimed space"), "{out}");
    assert!(!d.ok(&["images"]).contains("<none>"));
    // prune -a keeps what a container uses, and the built-in busybox.
    d.ok(&["create", "--name", "keeper", &second]);
    d.ok(&["image", "prune", "-a", "-f"]);
    let images = d.ok(&["images"]);
    assert!(images.contains("5000/second") && images.contains("busybox"), "{images}");
    d.ok(&["rm", "keeper"]);
    d.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(d.ok(&["images"]).lines().count(), 2, "header and busybox");
    assert!(entries(&d, "layers").is_empty(), "{:?}", entries(&d, "layers"));
}

#[test]
fn save_writes_archives_that_skopeo_and_podman_read() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let layout = push_test_images(&reg);
    let test = reg.reference("test:v1");
    d.ok(&["pull", "-q", &test]);
    let archive = d.dir.join("saved.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), &test]);
    assert!(!d.dir.join("saved.tar.part").exists());
    let built = oci::test_image();
    let diff_ids: Vec<String> = built.layers.iter().map(|l| oci::sha256(&oci::layer_tar(l))).collect();
    for transport in ["docker-archive", "oci-archive"] {
        let v = integration_tests::skopeo_inspect(&format!("{transport}:{}", archive.display()), &["--config"]);
        // The layers saved are the layers pushed: the same diff ids.
        assert_eq!(v["rootfs"]["diff_ids"], serde_json::json!(diff_ids), "{transport}: {v}");
        assert_eq!(v["config"]["Cmd"], built.config["Cmd"], "{transport}: {v}");
    }
    // podman, another engine, loads it under its name, config intact.
    let storage = d.dir.join("podman");
    let podman = |args: &[&str]| -> Output {
        std::process::Command::new("podman")
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "none"])
            .args(args)
            .output()
            .expect("podman (apt-get install podman)")
            .into()
    };
    let out = podman(&["load", "-q", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = podman(&["image", "inspect", "--format", "{{json .Config.Cmd}} {{len .RootFS.Layers}}", &test]);
    assert_eq!(out.stdout.trim(), r#"["echo $GREETING from $(pwd)"] 3"#, "{out:?}");
    drop(layout);
    let out = d.ctl(&["save", "-o", archive.to_str().unwrap(), "nosuch"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("No such image"), "{out:?}");
    assert!(archive.exists(), "a failed save leaves the earlier archive alone");
}

/// Images kept as one rootfs (the built-in busybox, an imported tarball)
/// are saved as one layer with a config from their record, and load back.
#[test]
fn built_in_and_imported_images_save_as_one_layer_and_load_back() {
    let d = Daemon::start();
    let archive = d.dir.join("busybox.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    let v = integration_tests::skopeo_inspect(&format!("docker-archive:{}", archive.display()), &["--config"]);
    assert_eq!(v["config"]["Cmd"], serde_json::json!(["sh"]), "{v}");
    assert_eq!(v["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(1), "{v}");

    let tar = d.dir.join("rootfs.tar");
    let busybox = integration_tests::image_dirs(&d).into_iter().next().expect("busybox image");
    integration_tests::sh(&format!("tar -C {}/rootfs -cf {} .", busybox.display(), tar.display()));
    d.ok(&["image", "import", "mine:1", tar.to_str().unwrap()]);
    let saved = d.dir.join("mine.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "mine:1"]);
    d.ok(&["rmi", "mine:1"]);
    d.ok(&["load", "-q", "-i", saved.to_str().unwrap()]);
    let out = d.ctl(&["run", "--rm", "--network", "none", "mine:1"]);
    assert!(out.stderr.contains("no command specified"), "still no Cmd: {out:?}");
    let out = d.ok(&["run", "--rm", "--network", "none", "mine:1", "sh", "-c", "ls -l /bin/sh | cut -c1; echo ok"]);
    assert_eq!(out, "l\nok\n", "symlinks stay symlinks");
}

#[test]
fn load_takes_our_save_and_skopeos_archives_and_refuses_escapes() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let test = reg.reference("test:v1");
    d.ok(&["pull", "-q", &test]);
    let archive = d.dir.join("saved.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), &test]);
    d.ok(&["rmi", &test]);
    assert!(entries(&d, "layers").is_empty());
    let out = d.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {test}"));
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &test]), "hello from /srv\n");

    // A docker-archive written by skopeo, from stdin.
    let theirs = d.dir.join("skopeo.tar");
    let src = format!("docker://{}", reg.reference("second:v1"));
    let out =
        reg.skopeo(&["copy", "--src-tls-verify=false", &src, &format!("docker-archive:{}:other:v2", theirs.display())]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = d.ctl_cmd(&["load"]).stdin(std::fs::File::open(&theirs).unwrap()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "other:v2"]), "second image\n");
    assert_eq!(entries(&d, "layers").len(), 4, "the shared base layer is stored once");

    // manifest.json naming a file outside the archive is refused.
    let evil = d.dir.join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let manifest = r#"[{"Config":"../../../../../etc/passwd","RepoTags":["evil:1"],"Layers":[]}]"#;
    std::fs::write(evil.join("manifest.json"), manifest).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", evil.join("config.json")).unwrap();
    let tar = d.dir.join("evil.tar");
    integration_tests::sh(&format!("tar -C {} -cf {} .", evil.display(), tar.display()));
    failed(&d.ctl(&["load", "-i", tar.to_str().unwrap()]), 125, "not a file inside the archive");
    let linked = r#"[{"Config":"config.json","RepoTags":["evil:1"],"Layers":[]}]"#;
    std::fs::write(evil.join("manifest.json"), linked).unwrap();
    integration_tests::sh(&format!("tar -C {} -cf {} .", evil.display(), tar.display()));
    failed(&d.ctl(&["load", "-i", tar.to_str().unwrap()]), 125, "not a file inside the archive");
    assert!(!d.ok(&["images"]).contains("evil"));
    let leftovers = integration_tests::image_dirs(&d);
    assert_eq!(leftovers.len(), 1, "no spooled archive or its directory left: {leftovers:?}");
}

/// The issue's "done when": nginx from a registry serves with its own CMD,
/// on a published port and on the ports `-P` picks, and stops on the
/// image's StopSignal (SIGQUIT, nginx's graceful stop) well within the
/// grace period.
#[test]
fn nginx_from_a_registry_serves_with_its_own_cmd() {
    let w = World::new();
    let d = &w.d;
    let reg = Registry::start(&d.ns);
    let layout = Layout::new();
    layout.add_image(&nginx::nginx_image(), "nginx");
    reg.push(layout.path(), "nginx", "nginx:1.22");
    let image = reg.reference("nginx:1.22");

    d.ok(&["run", "-d", "-p", "8080:80", "--name", "web", &image]);
    assert_eq!(get_from(&w.ext, &format!("http://{HOST_IP}:8080/")), nginx::PAGE);
    let ps = d.ok(&["ps"]);
    let row = ps.lines().find(|l| l.ends_with(" web")).expect(&ps);
    assert!(row.contains("\"nginx -g daemon off;\"") && row.contains("0.0.0.0:8080->80/tcp"), "{ps}");

    d.ok(&["run", "-d", "-P", "--name", "web2", &image]);
    let port = d.ok(&["port", "web2"]);
    let host_port = port.trim().rsplit(':').next().unwrap().to_string();
    assert!(port.starts_with("80/tcp -> 0.0.0.0:"), "{port}");
    assert_eq!(get_from(&w.ext, &format!("http://{HOST_IP}:{host_port}/")), nginx::PAGE);

    let started = Instant::now();
    d.ok(&["stop", "-t", "20", "web"]);
    assert!(started.elapsed() < Duration::from_secs(10), "SIGQUIT stops nginx: {:?}", started.elapsed());
    assert_eq!(d.inspect("web")["State"]["ExitCode"], 0, "nginx quit gracefully");
    d.ok(&["rm", "-f", "web", "web2"]);
}

/// A registry answering 500 (a Python stand-in on the namespace's
/// loopback), and a real one serving a truncated or an overlong layer: one
/// clear line each, nothing half-written, and the retry works once the
/// layer is whole.
#[test]
fn a_failing_registry_or_a_layer_of_the_wrong_size_is_one_clear_line() {
    let d = Daemon::start();
    let server = r#"python3 -c "import http.server as h
class H(h.BaseHTTPRequestHandler):
    def do_GET(s): s.send_response(500); s.end_headers(); s.wfile.write(b'storage down')
    do_HEAD = do_GET
h.HTTPServer(('127.0.0.1', 5999), H).serve_forever()""#;
    let _broken = Bg::spawn(&d.ns, server);
    integration_tests::wait_for("the 500 server to listen", Duration::from_secs(10), || {
        d.ns.exec("ss -Htln 'sport = :5999'").contains("5999").then_some(())
    });
    failed(&d.ctl(&["pull", "127.0.0.1:5999/broken:1"]), 125, "answered 500");

    let (reg, _layout, data) = served_layer(&d, 1);
    let whole = std::fs::read(&data).unwrap();
    std::fs::write(&data, &whole[..whole.len() / 2]).unwrap();
    failed(&d.ctl(&["pull", &reg.reference("test:v1")]), 125, &format!("cut short after {}", whole.len() / 2));
    assert!(!d.ok(&["images"]).contains("5000/test"));
    assert!(entries(&d, "blobs/sha256").iter().all(|b| !b.starts_with(".tmp-")), "{:?}", entries(&d, "blobs/sha256"));
    // Longer than the manifest says: refused before the extra is written.
    std::fs::write(&data, [&whole[..], &[0u8; 4096][..]].concat()).unwrap();
    failed(&d.ctl(&["pull", &reg.reference("test:v1")]), 125, "sent more than the");
    std::fs::write(&data, &whole).unwrap();
    d.ok(&["pull", "-q", &reg.reference("test:v1")]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &reg.reference("test:v1")]), "hello from /srv\n");
}

/// A registry on an address other than loopback is spoken to over HTTPS,
/// unless the daemon was started with `--insecure-registry` naming it.
#[test]
fn only_named_insecure_registries_are_reached_over_plain_http() {
    let mut d = Daemon::start();
    d.ns.exec("ip addr add 10.211.0.1/32 dev lo");
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let host = format!("10.211.0.1:{}", reg.port());
    let image = format!("{host}/test:v1");
    failed(&d.ctl(&["pull", &image]), 125, &format!("start runtimed with --insecure-registry {host}"));
    d.stop();
    d.extra_args.push(format!("--insecure-registry={host}"));
    d.spawn();
    d.ok(&["pull", "-q", &image]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &image]), "hello from /srv\n");
}

/// An OCI layout whose index.json names a multi-platform index (as
/// `docker buildx` and skopeo write them) loads the image for this machine;
/// an index with no image for it is refused in one line.
#[test]
fn a_multi_platform_oci_archive_loads_the_image_for_this_machine() {
    let d = Daemon::start();
    let layout = Layout::new();
    layout.add_index(&oci::test_index(), "multi");
    let tar = d.dir.join("multi.tar");
    integration_tests::sh(&format!("tar -C {} -cf {} .", layout.path().display(), tar.display()));
    let out = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    let id = out.trim().strip_prefix("Loaded image ID: ").expect(&out).to_string();
    let platform = d.ok(&["run", "--rm", "--network", "none", "--entrypoint", "cat", &id, "/etc/platform"]);
    assert_eq!(platform.trim(), "linux/amd64");

    let other = Layout::new();
    other.add_index(&[oci::test_image_for("s390x")], "far");
    integration_tests::sh(&format!("tar -C {} -cf {} .", other.path().display(), tar.display()));
    failed(&d.ctl(&["load", "-i", tar.to_str().unwrap()]), 125, "no manifest for platform linux/amd64");
}

/// A small blob that expands without end (128 MiB of zeros, gzipped to
/// about 128 KiB), pulled or imported onto a 48 MiB image store:
/// unpacking stops while a reserve is still free, the error says why,
/// nothing of it stays, and the daemon goes on working. Then the disk is
/// filled by something else: a pull fails cleanly and works once there is
/// room.
#[test]
fn a_decompression_bomb_stops_before_the_disk_is_full() {
    let mut d = Daemon::start();
    d.restart_on_small_disk(48);
    let reg = Registry::start(&d.ns);
    let layout = Layout::new();
    let bomb = oci::ImageSpec {
        layers: vec![oci::base_layer(), vec![oci::Entry::file("bomb", vec![0u8; 128 << 20])]],
        config: serde_json::json!({ "Cmd": ["true"] }),
        architecture: "amd64".into(),
        os: "linux".into(),
    };
    layout.add_image(&bomb, "bomb");
    reg.push(layout.path(), "bomb", "bomb:1");
    failed(&d.ctl(&["pull", &reg.reference("bomb:1")]), 125, "expands past the room on the image store's disk");
    let free = d.ns.exec(&format!("df --output=avail -B1M {} | tail -1", d.root().display()));
    assert!(free.trim().parse::<u64>().unwrap() > 30, "the partial layer is gone: {free} MiB free");
    // The same as a tarball to import.
    let gz = d.dir.join("bomb.tar.gz");
    integration_tests::sh(&format!(
        "cd {0} && head -c 128M /dev/zero > zeros && tar -c zeros | gzip > {1} && rm zeros",
        d.dir.display(),
        gz.display()
    ));
    failed(&d.ctl(&["image", "import", "bomb2", gz.to_str().unwrap()]), 125, "expands past the room");
    let free = d.ns.exec(&format!("df --output=avail -B1M {} | tail -1", d.root().display()));
    assert!(free.trim().parse::<u64>().unwrap() > 30, "the partial import is gone: {free} MiB free");
    assert!(!d.ok(&["images"]).contains("bomb"));
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "busybox", "echo", "still fine"]), "still fine\n");

    // A disk filled by something else: the pull fails in one line, leaves
    // nothing, and works once there is room.
    let _layout = push_test_images(&reg);
    let filler = d.root().join("filler");
    integration_tests::sh(&format!("dd if=/dev/zero of={} bs=64k 2>/dev/null || true", filler.display()));
    let out = d.ctl(&["pull", &reg.reference("test:v1")]);
    assert_eq!(out.code, 125, "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("runtimectl:")).collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].contains("No space left") || errors[0].contains("room"), "{out:?}");
    std::fs::remove_file(&filler).unwrap();
    assert!(entries(&d, "layers").is_empty(), "{:?}", entries(&d, "layers"));
    assert!(entries(&d, "blobs/sha256").iter().all(|b| !b.starts_with(".tmp-")), "{:?}", entries(&d, "blobs/sha256"));
    d.ok(&["pull", "-q", &reg.reference("test:v1")]);
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &reg.reference("test:v1")]), "hello from /srv\n");
}

/// Every blob's first download breaks half-way (a proxy closes the
/// connection): the pull resumes each from where it stopped with a range
/// request, checks the digest over the whole file, and the image runs.
#[test]
fn a_download_cut_off_half_way_resumes_where_it_stopped() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let _layout = push_test_images(&reg);
    let proxy = CuttingProxy::start(&d.ns, &reg, 5990);
    let image = "127.0.0.1:5990/test:v1";
    d.ok(&["pull", "-q", image]);
    let log = proxy.log();
    let cuts = log.lines().filter(|l| l.starts_with("cut ")).count();
    let resumed = log.lines().filter(|l| l.starts_with("range bytes=") && !l.starts_with("range bytes=0-")).count();
    // The config and the three layers are cut; the layers resume (the
    // config, a few hundred bytes, is fetched again).
    assert_eq!((cuts, resumed), (4, 3), "every cut layer resumed by a range request:\n{log}");
    assert!(d.log().contains("resuming"), "{}", d.log());
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", image]), "hello from /srv\n");
}

/// A registry that speaks the bearer-token protocol (as Docker Hub does):
/// anonymous pulls are refused, logged-in ones get a token for the scope
/// they ask and pull.
#[test]
fn bearer_token_registries_pull_with_the_stored_login() {
    let d = Daemon::start();
    let reg = Registry::with_tokens(&d.ns, "bob", "t0ken-pass");
    let _layout = push_test_images(&reg);
    let config = d.dir.join("docker-config");
    let ctl = ctl_with_config(&d, &config);
    let image = reg.reference("test:v1");
    failed(&ctl(&["pull", &image]), 125, "pull access denied");
    failed(&ctl(&["login", "-u", "bob", "-p", "wrong", &reg.addr()]), 125, "incorrect username or password");
    assert_eq!(ctl(&["login", "-u", "bob", "-p", "t0ken-pass", &reg.addr()]).code, 0);
    let out = ctl(&["pull", "-q", &image]);
    assert_eq!(out.code, 0, "{out:?}\n{}", reg.token_log());
    assert!(reg.token_log().contains("token for bob ['repository:test:pull']"), "{}", reg.token_log());
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", &image]), "hello from /srv\n");
}

/// Layers that try to write outside their directory, pulled from the
/// registry: through `..`, an absolute path, and a symlink the layer made.
/// Each pull fails in one line, nothing lands on the host, no layer stays.
#[test]
fn hostile_layers_cannot_write_outside_their_directory() {
    let d = Daemon::start();
    let reg = Registry::start(&d.ns);
    let layout = Layout::new();
    let mark = format!("escaped-{}", std::process::id());
    let raw = |path: &str| oci::Entry::Raw { path: path.into(), data: b"owned\n".to_vec() };
    let hostile: Vec<(&str, Vec<oci::Entry>)> = vec![
        ("dotdot", vec![raw(&format!("../../../../../../tmp/{mark}-dotdot"))]),
        ("absolute", vec![raw(&format!("/tmp/{mark}-absolute"))]),
        (
            "symlink",
            vec![oci::Entry::symlink("out", "/tmp"), oci::Entry::file(&format!("out/{mark}-symlink"), "owned\n")],
        ),
    ];
    for (tag, layer) in hostile {
        let spec = oci::ImageSpec { layers: vec![oci::base_layer(), layer], ..oci::shared_base_image() };
        layout.add_image(&spec, tag);
        reg.push(layout.path(), tag, &format!("evil:{tag}"));
        failed(&d.ctl(&["pull", &reg.reference(&format!("evil:{tag}"))]), 125, "leaves the layer");
        let escaped: Vec<_> = std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&mark))
            .collect();
        assert!(escaped.is_empty(), "{tag}: {escaped:?}");
    }
    assert!(!d.ok(&["images"]).contains("evil"));
    assert!(entries(&d, "layers").is_empty(), "{:?}", entries(&d, "layers"));
}

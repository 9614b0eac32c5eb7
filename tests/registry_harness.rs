//! The registry test harness itself: OCI layouts built in Rust, pushed with
//! skopeo to a real registry inside a test namespace, read back with
//! skopeo, and everything gone afterwards.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use integration_tests::oci::{self, Layout, MEDIA_INDEX, MEDIA_LAYER, MEDIA_MANIFEST};
use integration_tests::{skopeo_inspect, unique, Netns, Registry};
use serde_json::{json, Value};

/// What a test leaves behind if its guards fail: its namespace, registry
/// processes and directories.
struct Leftovers {
    netns: PathBuf,
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

impl Leftovers {
    fn of(ns: &Netns, regs: &[&Registry], layout: &Layout) -> Leftovers {
        let mut dirs: Vec<PathBuf> = regs.iter().map(|r| r.dir().to_path_buf()).collect();
        dirs.push(layout.dir.clone());
        Leftovers { netns: PathBuf::from(ns.path()), pids: regs.iter().filter_map(|r| r.pid()).collect(), dirs }
    }

    fn assert_gone(&self) {
        assert!(!self.netns.exists(), "{} left behind", self.netns.display());
        for pid in &self.pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "registry process {pid} left running");
        }
        for dir in &self.dirs {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
}

/// Path -> (entry type, mode) of every entry of a gzipped layer blob.
fn layer_entries(layout: &Layout, digest: &str) -> BTreeMap<String, (tar::EntryType, u32)> {
    let blob = layout.read_blob(digest);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut tar_bytes).expect("gunzip layer");
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, (e.header().entry_type(), e.header().mode().unwrap()))
        })
        .collect()
}

fn digests(descs: &Value) -> Vec<String> {
    descs.as_array().expect("array").iter().map(|d| d["digest"].as_str().unwrap().to_string()).collect()
}

#[test]
fn open_registry_serves_pushed_images_and_indexes() {
    let ns = Netns::new(&unique("rg"));
    let layout = Layout::new();
    let app = layout.add_image(&oci::test_image(), "app");
    let (index, platforms) = layout.add_index(&oci::test_index(), "multi");
    let second = layout.add_image(&oci::shared_base_image(), "second");

    // The layers are what the pull tests rely on.
    assert_eq!(app.layers.len(), 3);
    assert!(app.layers.iter().all(|l| l.media_type == MEDIA_LAYER));
    assert_eq!(second.layers[0], app.layers[0], "the shared base layer has one digest");
    assert_ne!(second.layers[1], app.layers[1]);
    let base = layer_entries(&layout, &app.layers[0].digest);
    assert_eq!(base["bin/busybox"], (tar::EntryType::Regular, 0o755));
    assert_eq!(base["bin/sh"].0, tar::EntryType::Symlink);
    let files = layer_entries(&layout, &app.layers[1].digest);
    assert_eq!(files["bin/suid"], (tar::EntryType::Regular, 0o4755));
    assert_eq!(files["srv/hard"].0, tar::EntryType::Link);
    assert_eq!(files["srv/link"].0, tar::EntryType::Symlink);
    let changes = layer_entries(&layout, &app.layers[2].digest);
    assert!(changes.contains_key("etc/.wh.deleted.txt"), "{changes:?}");
    assert!(changes.contains_key("data/old/.wh..wh..opq"), "{changes:?}");

    let reg = Registry::start(&ns);
    assert_eq!(reg.addr(), "127.0.0.1:5000");
    assert!(reg.creds().is_none());
    // A second registry in the same namespace takes the next free port.
    let other = Registry::start(&ns);
    assert_eq!(other.addr(), "127.0.0.1:5001");
    let leftovers = Leftovers::of(&ns, &[&reg, &other], &layout);

    reg.push(layout.path(), "app", "test/app:v1");
    reg.push(layout.path(), "multi", "test/multi:latest");
    reg.push(layout.path(), "second", "test/second:1");

    let info = reg.inspect("test/app:v1");
    assert_eq!(info["Digest"], app.manifest.digest, "skopeo kept the manifest digest");
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"], json!(app.layers.iter().map(|l| &l.digest).collect::<Vec<_>>()));
    assert_eq!(info["Env"], json!(["PATH=/bin", "GREETING=hello"]));
    assert_eq!(info["Labels"]["org.example.test"], "registry-harness");

    let manifest = reg.inspect_raw("test/app:v1");
    assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
    assert_eq!(manifest["config"]["digest"], app.config.digest);
    assert_eq!(digests(&manifest["layers"]), app.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>());
    assert!(manifest["layers"].as_array().unwrap().iter().all(|l| l["mediaType"] == MEDIA_LAYER));

    let config = reg.inspect_config("test/app:v1");
    assert_eq!(config["config"]["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(config["config"]["Cmd"], json!(["echo $GREETING from $(pwd)"]));
    assert_eq!(config["config"]["WorkingDir"], "/srv");
    assert_eq!(config["config"]["ExposedPorts"], json!({ "80/tcp": {} }));
    assert_eq!(config["config"]["StopSignal"], "SIGTERM");
    assert_eq!(config["rootfs"]["diff_ids"], json!(app.diff_ids));

    // The index as served: both platforms, each manifest fetchable by digest.
    let served = reg.inspect_raw("test/multi:latest");
    assert_eq!(served["mediaType"], MEDIA_INDEX);
    assert_eq!(reg.inspect("test/multi:latest")["Digest"], index.digest);
    let listed: Vec<(String, String)> = served["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["platform"]["architecture"].as_str().unwrap().into(), m["digest"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("amd64".into(), platforms[0].manifest.digest.clone()),
            ("arm64".into(), platforms[1].manifest.digest.clone())
        ]
    );
    let arm = reg.inspect_config(&format!("test/multi@{}", platforms[1].manifest.digest));
    assert_eq!(arm["architecture"], "arm64");
    assert_ne!(platforms[0].layers[2], platforms[1].layers[2], "the marker layers differ");
    assert_eq!(platforms[0].layers[..2], platforms[1].layers[..2]);

    let second_info = reg.inspect("test/second:1");
    assert_eq!(second_info["Layers"][0], app.layers[0].digest);
    assert_eq!(second_info["Layers"].as_array().unwrap().len(), 2);

    // Archives, as `save` will write them, read back by skopeo_inspect.
    let docker_archive = format!("docker-archive:{}/app.tar", reg.dir().display());
    let oci_archive = format!("oci-archive:{}/app-oci.tar", reg.dir().display());
    for dest in [&docker_archive, &oci_archive] {
        let out = reg.skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}", reg.reference("test/app:v1")),
            dest,
        ]);
        assert_eq!(out.code, 0, "skopeo copy to {dest}: {}", out.stderr);
        assert_eq!(skopeo_inspect(dest, &[])["Layers"].as_array().unwrap().len(), 3);
        let config = skopeo_inspect(dest, &["--config", "--raw"]);
        assert_eq!(config["rootfs"]["diff_ids"], json!(app.diff_ids), "{dest}");
        assert_eq!(config["config"]["Cmd"], json!(["echo $GREETING from $(pwd)"]));
    }
    assert_eq!(skopeo_inspect(&oci_archive, &[])["Digest"], app.manifest.digest);

    drop((reg, other, layout, ns));
    leftovers.assert_gone();
}

#[test]
fn auth_registry_requires_credentials() {
    let ns = Netns::new(&unique("rg"));
    let layout = Layout::new();
    let app = layout.add_image(&oci::test_image(), "app");
    let reg = Registry::with_auth(&ns, "tester", "s3cret");
    assert_eq!(reg.creds(), Some(("tester", "s3cret")));
    let leftovers = Leftovers::of(&ns, &[&reg], &layout);

    for creds in [None, Some("tester:wrong")] {
        let out = reg.try_push(layout.path(), "app", "private/app:v1", creds);
        assert_ne!(out.code, 0, "push with {creds:?} must be refused");
        assert!(
            out.stderr.contains("unauthorized") || out.stderr.contains("authentication required"),
            "{}",
            out.stderr
        );
    }
    reg.push(layout.path(), "app", "private/app:v1");

    let out = reg.try_inspect("private/app:v1", &[], None);
    assert_ne!(out.code, 0, "anonymous inspect must be refused");
    assert!(out.stderr.contains("unauthorized") || out.stderr.contains("authentication required"), "{}", out.stderr);
    let info = reg.inspect("private/app:v1");
    assert_eq!(info["Digest"], app.manifest.digest);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3);

    drop((reg, layout, ns));
    leftovers.assert_gone();
}

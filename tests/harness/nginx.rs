//! A web server image built from Debian's nginx package, which
//! scripts/install-deps.sh downloads (never installs): the package's
//! binary, the host's copies of the libraries it links, a config and a
//! page, on the busybox base layer. Its config is what a docker nginx image
//! has: `nginx -g "daemon off;"`, port 80 exposed, stopped by SIGQUIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::oci::{base_layer, Entry, ImageSpec};
use crate::unique;

/// Where install-deps.sh keeps the package.
const DEBS: &str = "/var/cache/runtimed-tests";

/// The page the image serves at /.
pub const PAGE: &str = "<h1>nginx from a pulled image</h1>\n";

const CONF: &str = "user nobody nogroup;
worker_processes 1;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    server { listen 80; root /usr/share/nginx/html; }
}
";

/// The image: busybox, then nginx and its libraries, then config and page.
pub fn nginx_image() -> ImageSpec {
    let unpacked = Unpacked::new();
    let binary = unpacked.0.join("usr/sbin/nginx");
    let mut server: Vec<Entry> =
        ["usr", "usr/sbin", "lib", "lib/x86_64-linux-gnu", "lib64"].iter().map(|d| Entry::dir(d)).collect();
    server.push(Entry::file_mode("usr/sbin/nginx", std::fs::read(&binary).expect("nginx binary"), 0o755));
    for lib in linked_libraries(&binary) {
        let data = std::fs::read(&lib).unwrap_or_else(|e| panic!("{}: {e}", lib.display()));
        server.push(Entry::file_mode(lib.to_str().unwrap().trim_start_matches('/'), data, 0o755));
    }
    let dirs = ["etc/nginx", "var", "var/log", "var/log/nginx", "var/lib", "var/lib/nginx", "run", "usr/share"];
    let mut site: Vec<Entry> =
        dirs.iter().chain(&["usr/share/nginx", "usr/share/nginx/html"]).map(|d| Entry::dir(d)).collect();
    site.push(Entry::file("etc/nginx/nginx.conf", CONF));
    site.push(Entry::file("usr/share/nginx/html/index.html", PAGE));
    ImageSpec {
        layers: vec![base_layer(), server, site],
        config: json!({
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": ["PATH=/usr/sbin:/bin"],
            "ExposedPorts": { "80/tcp": {} },
            "StopSignal": "SIGQUIT",
        }),
        architecture: "amd64".into(),
        os: "linux".into(),
    }
}

/// The package unpacked in a directory of its own, removed on drop.
struct Unpacked(PathBuf);

impl Unpacked {
    fn new() -> Unpacked {
        let deb = std::fs::read_dir(DEBS)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().contains("/nginx_")))
            .unwrap_or_else(|| panic!("no nginx package in {DEBS}: run scripts/install-deps.sh"));
        let dir = PathBuf::from(format!("/tmp/{}", unique("nginx")));
        let ok = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir).status().expect("dpkg-deb").success();
        assert!(ok, "dpkg-deb -x {}", deb.display());
        Unpacked(dir)
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shared libraries `binary` loads, the dynamic loader included, as
/// `ldd` resolves them on this host.
fn linked_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("not found"), "ldd {}: {text}", binary.display());
    text.lines()
        .filter_map(|l| {
            let path = l.split_once("=>").map_or(l, |(_, p)| p).split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

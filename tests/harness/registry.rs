//! A real image registry of the test's own: Debian's `docker-registry`
//! (the CNCF distribution registry v2.8) inside a test namespace, so pulls
//! only ever reach addresses of that namespace; and
//! `skopeo`, an independent client, to push images to it and to read what
//! it (or an archive written by `save`) holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{unique, Netns, Output};

/// The first port tried in the namespace; namespaces are private, so it is
/// taken only by another registry in the same namespace.
pub const REGISTRY_PORT: u16 = 5000;

pub struct Registry {
    /// Path of the namespace, for `nsenter --net=`.
    netns: String,
    dir: PathBuf,
    port: u16,
    creds: Option<(String, String)>,
    child: Option<Child>,
    /// The token server of a registry with token auth.
    tokens: Option<Child>,
}

/// How a registry checks its clients.
enum Auth {
    Open,
    /// HTTP basic auth against an htpasswd file.
    Basic,
    /// Bearer tokens from a token server of the test's own.
    Token,
}

impl Registry {
    /// A registry anyone may push to and pull from.
    pub fn start(ns: &Netns) -> Registry {
        Registry::launch(ns, None, Auth::Open)
    }

    /// A registry requiring HTTP basic auth as `user`/`password`
    /// (an htpasswd file with a bcrypt hash).
    pub fn with_auth(ns: &Netns, user: &str, password: &str) -> Registry {
        Registry::launch(ns, Some((user.into(), password.into())), Auth::Basic)
    }

    /// A registry requiring bearer tokens, which a token server
    /// (tests/harness/token_server.py) gives `user`/`password` only: the
    /// token protocol Docker Hub speaks.
    pub fn with_tokens(ns: &Netns, user: &str, password: &str) -> Registry {
        Registry::launch(ns, Some((user.into(), password.into())), Auth::Token)
    }

    fn launch(ns: &Netns, creds: Option<(String, String)>, auth: Auth) -> Registry {
        let netns = ns.path();
        let port = (REGISTRY_PORT..REGISTRY_PORT + 100).find(|p| port_free(&netns, *p)).expect("a free port");
        let dir = PathBuf::from(format!("/tmp/{}", unique("reg")));
        // From here on, Drop removes the directory whatever fails.
        let mut reg = Registry { netns, dir, port, creds, child: None, tokens: None };
        std::fs::create_dir_all(reg.dir.join("tmp")).expect("registry dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n",
            reg.dir.join("data").display(),
            // Every address of the namespace, for tests that pull from a
            // non-loopback one (`--insecure-registry`).
            format_args!("0.0.0.0:{}", reg.port)
        );
        if let (Auth::Token, Some((user, password))) = (&auth, reg.creds.clone()) {
            config += &reg.start_token_server(&user, &password);
        }
        if let (Auth::Basic, Some((user, password))) = (&auth, &reg.creds) {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (apt-get install apache2-utils)");
            assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::write(reg.dir.join("htpasswd"), &out.stdout).expect("htpasswd file");
            config += &format!(
                "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                reg.dir.join("htpasswd").display()
            );
        }
        std::fs::write(reg.dir.join("config.yml"), config).expect("registry config");
        let log = std::fs::File::create(reg.dir.join("registry.log")).expect("registry log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", reg.netns))
            .args(["docker-registry", "serve"])
            .arg(reg.dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry (apt-get install docker-registry)");
        reg.child = Some(child);
        reg.wait_ready();
        reg
    }

    /// Starts the token server (its key and certificate made here) on the
    /// port after the registry's; returns the registry's auth config.
    fn start_token_server(&mut self, user: &str, password: &str) -> String {
        let (key, cert) = (self.dir.join("token.key"), self.dir.join("token.crt"));
        crate::sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-token-issuer -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ));
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/token_server.py");
        let port = self.port + 1000;
        let log = std::fs::File::create(self.dir.join("tokens.log")).expect("token server log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns))
            .arg("python3")
            .arg(script)
            .args([key.as_os_str(), cert.as_os_str()])
            .args([user, password, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the token server");
        self.tokens = Some(child);
        crate::wait_for("the token server to listen", Duration::from_secs(10), || {
            (!port_free(&self.netns, port)).then_some(())
        });
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{port}/token\n    service: test-registry\n    \
             issuer: test-token-issuer\n    rootcertbundle: {}\n",
            cert.display()
        )
    }

    /// What the token server was asked, a line per request.
    pub fn token_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tokens.log")).unwrap_or_default()
    }

    /// Waits until GET /v2/ answers (200 open, 401 with auth).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = format!("http://{}/v2/", self.addr());
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("docker-registry exited with {status}:\n{}", self.log());
            }
            let code = Command::new("nsenter")
                .arg(format!("--net={}", self.netns))
                .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", &url])
                .output()
                .expect("spawn curl");
            if matches!(&code.stdout[..], b"200" | b"401") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not serve {url} within 20s:\n{}", self.log());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// "127.0.0.1:PORT", inside the namespace.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// "127.0.0.1:PORT/NAME:TAG": an image reference for `runtimectl pull`.
    pub fn reference(&self, name_and_tag: &str) -> String {
        format!("{}/{name_and_tag}", self.addr())
    }

    /// The user and password the registry requires, if any.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// "user:password" for skopeo's --creds flags.
    fn creds_arg(&self) -> Option<String> {
        self.creds().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The registry's own directory (config, storage, log), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Runs `skopeo ARGS` inside the registry's namespace (no policy check,
    /// temporary files in the registry's directory).
    pub fn skopeo(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.netns))
            .args(["skopeo", "--insecure-policy", "--tmpdir"])
            .arg(self.dir.join("tmp"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(Output::from)
            .expect("spawn skopeo (apt-get install skopeo)")
    }

    /// Copies image `tag_in_layout` of OCI layout `layout` to NAME:TAG
    /// here, with the registry's credentials; every platform of an index
    /// (`--all`), digests unchanged (`--preserve-digests`).
    pub fn push(&self, layout: &Path, tag_in_layout: &str, name_and_tag: &str) {
        let out = self.try_push(layout, tag_in_layout, name_and_tag, self.creds_arg().as_deref());
        assert_eq!(out.code, 0, "skopeo copy to {name_and_tag} failed: {}\nregistry log:\n{}", out.stderr, self.log());
    }

    /// Like [`Registry::push`] with `creds` ("user:password", None:
    /// anonymous), for tests expecting a refusal.
    pub fn try_push(&self, layout: &Path, tag_in_layout: &str, name_and_tag: &str, creds: Option<&str>) -> Output {
        let src = format!("oci:{}:{tag_in_layout}", layout.display());
        let dest = format!("docker://{}", self.reference(name_and_tag));
        let mut args = vec!["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"];
        match creds {
            Some(c) => args.extend(["--dest-creds", c]),
            None => args.push("--dest-no-creds"),
        }
        args.extend([src.as_str(), dest.as_str()]);
        self.skopeo(&args)
    }

    /// `skopeo inspect FLAGS docker://ADDR/NAME:TAG` with `creds`
    /// ("user:password", None: anonymous).
    pub fn try_inspect(&self, name_and_tag: &str, flags: &[&str], creds: Option<&str>) -> Output {
        let image = format!("docker://{}", self.reference(name_and_tag));
        let mut args = vec!["inspect", "--tls-verify=false"];
        match creds {
            Some(c) => args.extend(["--creds", c]),
            None => args.push("--no-creds"),
        }
        args.extend(flags);
        args.push(&image);
        self.skopeo(&args)
    }

    fn inspect_with(&self, name_and_tag: &str, flags: &[&str]) -> Value {
        let out = self.try_inspect(name_and_tag, flags, self.creds_arg().as_deref());
        assert_eq!(out.code, 0, "skopeo inspect {name_and_tag} failed: {}\nregistry log:\n{}", out.stderr, self.log());
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("skopeo inspect printed no JSON ({e}): {}", out.stdout))
    }

    /// `skopeo inspect`: the image for this machine's platform, with its
    /// Digest, Layers, Architecture, Env, Labels...
    pub fn inspect(&self, name_and_tag: &str) -> Value {
        self.inspect_with(name_and_tag, &[])
    }

    /// The manifest or index exactly as the registry serves it.
    pub fn inspect_raw(&self, name_and_tag: &str) -> Value {
        self.inspect_with(name_and_tag, &["--raw"])
    }

    /// The image config (for this machine's platform) as stored.
    pub fn inspect_config(&self, name_and_tag: &str) -> Value {
        self.inspect_with(name_and_tag, &["--config", "--raw"])
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for mut child in [self.child.take(), self.tokens.take()].into_iter().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether nothing listens on TCP `port` in namespace `netns`.
fn port_free(netns: &str, port: u16) -> bool {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ss", "-Htln", &format!("sport = :{port}")])
        .output()
        .expect("spawn ss");
    assert!(out.status.success(), "ss: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.is_empty()
}

/// `skopeo inspect FLAGS IMAGE` on a local image, such as
/// "docker-archive:PATH", "oci-archive:PATH" or "oci:DIR:TAG" (no network):
/// to check what `save` wrote. FLAGS: e.g. `["--raw"]`, `["--config", "--raw"]`.
pub fn skopeo_inspect(image: &str, flags: &[&str]) -> Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(flags)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .expect("spawn skopeo");
    let out = Output::from(out);
    assert_eq!(out.code, 0, "skopeo inspect {image} failed: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("skopeo inspect printed no JSON ({e}): {}", out.stdout))
}

//! HTTP/1.0 fetches with busybox `nc` (Debian's static busybox `wget`
//! crashes), from a namespace or from inside a container, retried for a
//! few seconds because servers take a moment to listen.

use std::time::Duration;

use crate::{sh, wait_for, Daemon, Netns};

/// Retries `fetch` for a few seconds.
pub fn eventually(what: &str, fetch: impl FnMut() -> Option<String>) -> String {
    wait_for(what, Duration::from_secs(10), fetch)
}

/// A shell command fetching `url` (http://HOST[:PORT]/PATH).
pub fn http_cmd(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "80"));
    format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
}

/// The body of an HTTP/1.0 response, if it was a 200.
pub fn body(response: &str) -> Option<String> {
    // CGI answers end their headers with a bare "\n\n".
    let (head, body) = response.split_once("\r\n\r\n").or_else(|| response.split_once("\n\n"))?;
    head.starts_with("HTTP/1.").then_some(())?;
    head.lines().next()?.contains(" 200 ").then(|| body.to_string())
}

/// Fetches from a network namespace (the host's or the external machine's).
pub fn get_from(ns: &Netns, url: &str) -> String {
    eventually(url, || {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "busybox", "sh", "-c", &http_cmd(url)])
            .output()
            .ok()?;
        body(&String::from_utf8_lossy(&out.stdout))
    })
}

/// Fetches from inside a container.
pub fn get_in(d: &Daemon, container: &str, url: &str) -> String {
    eventually(url, || body(&d.ctl(&["exec", container, "sh", "-c", &http_cmd(url)]).stdout))
}

/// A busybox web server whose /cgi-bin/ip answers the client's address.
pub const WEB: &str = "mkdir -p /www/cgi-bin && echo hello > /www/index.html && \
    printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && \
    chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www";

/// Starts busybox container `name` serving [`WEB`], with `extra` flags.
pub fn start_web(d: &Daemon, name: &str, extra: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", WEB]);
    d.ok(&args);
}

/// A web server on the host or the external machine, same CGI as WEB.
pub fn serve_dir(dir: &std::path::Path) {
    let cgi = dir.join("cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    std::fs::write(dir.join("index.html"), "outside\n").unwrap();
    std::fs::write(cgi.join("ip"), "#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n").unwrap();
    sh(&format!("chmod +x {}", cgi.join("ip").display()));
}

/// The client address a CGI reported (busybox httpd writes IPv4 clients as
/// `[::ffff:a.b.c.d]`).
pub fn client(reported: String) -> String {
    let t = reported.trim();
    t.trim_start_matches("[::ffff:").trim_end_matches(']').to_string()
}

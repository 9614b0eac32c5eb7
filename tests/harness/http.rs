//! HTTP/1.0 fetches with busybox `nc` (Debian's static busybox `wget`
//! crashes), from a namespace or from inside a container, retried for a
//! few seconds because servers take a moment to listen.

use std::time::Duration;

use crate::{wait_for, Daemon, Netns};

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

//! Image names: what users type (`busybox`, `nginx:1.27`,
//! `127.0.0.1:5000/app@sha256:...`), the full registry reference it
//! stands for, and the short form docker shows and we store.

use oci_client::Reference;

use crate::error::{Error, Result};

const DOCKER_HUB: &str = "docker.io";

/// The registry reference a name stands for, docker's way: no registry
/// means Docker Hub, a single path part there means `library/`, no tag
/// means `latest`.
pub fn parse(name: &str) -> Result<Reference> {
    if name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase() && !is_in_digest(name, c)) {
        return Err(invalid(name));
    }
    name.parse::<Reference>().map_err(|_| invalid(name))
}

fn is_in_digest(name: &str, c: char) -> bool {
    name.split_once('@').is_some_and(|(_, d)| d.contains(c))
}

fn invalid(name: &str) -> Error {
    Error::InvalidArgument(format!(
        "invalid reference format: \"{name}\": use [REGISTRY/]REPOSITORY[:TAG|@DIGEST] in lowercase"
    ))
}

/// The short name an image is stored and listed under: `busybox` for
/// `docker.io/library/busybox:latest`, `host:5000/app:v1` as is.
pub fn familiar(r: &Reference) -> String {
    let repo = match r.registry() {
        DOCKER_HUB => r.repository().strip_prefix("library/").unwrap_or(r.repository()).to_string(),
        registry => format!("{registry}/{}", r.repository()),
    };
    match (r.tag(), r.digest()) {
        (Some("latest"), _) => repo,
        (Some(tag), _) => format!("{repo}:{tag}"),
        (None, Some(digest)) => format!("{repo}@{digest}"),
        (None, None) => repo,
    }
}

/// A name as stored, whichever way it was typed; `None` if it is not a
/// valid name (it may still be an id prefix).
pub fn normalize(name: &str) -> Option<String> {
    parse(name).ok().map(|r| familiar(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_like_docker() {
        assert_eq!(normalize("busybox").unwrap(), "busybox");
        assert_eq!(normalize("busybox:latest").unwrap(), "busybox");
        assert_eq!(normalize("docker.io/library/busybox:latest").unwrap(), "busybox");
        assert_eq!(normalize("nginx:1.27").unwrap(), "nginx:1.27");
        assert_eq!(normalize("me/app").unwrap(), "me/app");
        assert_eq!(normalize("127.0.0.1:5000/app").unwrap(), "127.0.0.1:5000/app");
        assert_eq!(normalize("127.0.0.1:5000/app:v1").unwrap(), "127.0.0.1:5000/app:v1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(normalize(&format!("localhost:5000/x@{d}")).unwrap(), format!("localhost:5000/x@{d}"));
        assert!(normalize("Upper").is_none());
        assert!(normalize("bad name").is_none());
        assert!(normalize("x:").is_none());
    }

    #[test]
    fn full_references_follow_docker_hub_rules() {
        let r = parse("busybox").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("docker.io", "library/busybox", Some("latest")));
        let r = parse("127.0.0.1:5000/app:v1").unwrap();
        assert_eq!((r.registry(), r.repository(), r.tag()), ("127.0.0.1:5000", "app", Some("v1")));
    }
}

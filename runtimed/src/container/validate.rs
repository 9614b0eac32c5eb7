//! Checks a container's requested settings before anything is created.
//!
//! Every string here ends up in a file the container reads (/etc/hosts,
//! /etc/hostname), in a kernel call (sethostname, execve) or in the store, so
//! each is held to the rules of where it lands: a newline in a hostname would
//! add lines to /etc/hosts, a NUL would cut an argument short.

use super::ContainerSpec;
use crate::error::{Error, Result};

/// Longest hostname the kernel takes (HOST_NAME_MAX is 64 with the NUL).
const MAX_HOSTNAME: usize = 63;
/// Longest DNS name (RFC 1035), for aliases and `--add-host` names.
const MAX_DNS_NAME: usize = 253;
/// Command line and environment together. Linux refuses an execve whose
/// strings exceed a quarter of the stack limit (2 MiB by default); half of
/// that leaves room, and a request this big is refused at once instead of
/// being stored and failing at every start.
pub const MAX_EXEC_BYTES: usize = 1 << 20;
/// Environment entries: far more than any program uses; each one is copied
/// into every process the container starts and kept in the store.
pub const MAX_ENV_ENTRIES: usize = 16 * 1024;

/// The checks `create` makes.
pub fn spec(spec: &ContainerSpec) -> Result<()> {
    if !spec.hostname.is_empty() {
        hostname(&spec.hostname)?;
    }
    for (name, _) in &spec.extra_hosts {
        dns_name(name, "--add-host name")?;
    }
    for alias in &spec.aliases {
        dns_name(alias, "network alias")?;
    }
    no_nul(&spec.user, "user")?;
    no_nul(&spec.working_dir, "working directory")?;
    process(&spec.cmd, &spec.env)
}

/// A command and its environment, for `create` and `exec`.
pub fn process(cmd: &[String], env: &[String]) -> Result<()> {
    for arg in cmd {
        no_nul(arg, "command argument")?;
    }
    if env.len() > MAX_ENV_ENTRIES {
        return Err(Error::InvalidArgument(format!(
            "too many environment variables: {}, at most {MAX_ENV_ENTRIES} are allowed",
            env.len()
        )));
    }
    for kv in env {
        env_entry(kv)?;
    }
    let size: usize = cmd.iter().chain(env).map(|s| s.len() + 1).sum();
    if size > MAX_EXEC_BYTES {
        return Err(Error::InvalidArgument(format!(
            "command and environment are too large: {size} bytes in {} strings, at most {MAX_EXEC_BYTES} bytes are allowed",
            cmd.len() + env.len()
        )));
    }
    Ok(())
}

/// RFC 1123: dot-separated labels of letters, digits and inner hyphens.
pub fn hostname(name: &str) -> Result<()> {
    let invalid = |why: &str| Error::InvalidArgument(format!("invalid hostname {name:?}: {why}"));
    if name.len() > MAX_HOSTNAME {
        return Err(invalid(&format!("longer than {MAX_HOSTNAME} characters")));
    }
    labels(name, false).map_err(invalid)
}

/// A name in /etc/hosts or DNS: like a hostname, longer, `_` allowed.
pub fn dns_name(name: &str, what: &str) -> Result<()> {
    let invalid = |why: &str| Error::InvalidArgument(format!("invalid {what} {name:?}: {why}"));
    if name.len() > MAX_DNS_NAME {
        return Err(invalid(&format!("longer than {MAX_DNS_NAME} characters")));
    }
    labels(name, true).map_err(invalid)
}

fn labels(name: &str, underscore: bool) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated part must have 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part may not start or end with '-'");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (underscore && c == '_')) {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
    }
    Ok(())
}

/// `KEY=VALUE` with a non-empty key and no NUL.
pub fn env_entry(kv: &str) -> Result<()> {
    let key = kv.split('=').next().unwrap_or_default();
    if key.is_empty() || kv.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid environment variable {:?}: use KEY=VALUE with a non-empty KEY",
            truncated(kv)
        )));
    }
    Ok(())
}

fn no_nul(s: &str, what: &str) -> Result<()> {
    match s.contains('\0') {
        true => Err(Error::InvalidArgument(format!("invalid {what} {:?}: contains a NUL byte", truncated(s)))),
        false => Ok(()),
    }
}

/// The start of a long input, for an error message of one line.
fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_rfc_1123() {
        for ok in ["web", "web-1", "a.b.c", "x1", &"a".repeat(63)] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["h\n6.6.6.6 injected", "-a", "a-", "a..b", "a b", "a_b", "", &"a".repeat(64), &"a".repeat(300)] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_entries_and_aliases_are_dns_names() {
        assert!(dns_name("db_1.internal", "alias").is_ok());
        let err = dns_name("evil\n6.6.6.6 injected", "--add-host name").unwrap_err();
        assert!(err.to_string().contains("--add-host name"), "{err}");
        assert!(dns_name("a\tb", "alias").is_err());
    }

    #[test]
    fn environment_entries_need_a_key() {
        assert!(env_entry("A=1").is_ok() && env_entry("A=").is_ok() && env_entry("A==b").is_ok());
        assert!(env_entry("=x").is_err() && env_entry("").is_err() && env_entry("A=\0").is_err());
    }

    #[test]
    fn oversized_processes_are_refused() {
        let env: Vec<String> = (0..100_000).map(|i| format!("V{i}=1")).collect();
        let err = process(&["true".into()], &env).unwrap_err();
        assert!(err.to_string().contains("too many"), "{err}");
        assert!(process(&["true".into()], &env[..1000]).is_ok());
        let big = vec!["V=".to_string() + &"x".repeat(100_000); 11];
        let err = process(&["true".into()], &big).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
    }
}

//! Registry credentials in docker's `config.json` (`$DOCKER_CONFIG`, else
//! `~/.docker`): `{"auths": {"HOST": {"auth": base64("user:password")}}}`.
//! Other keys in the file are kept as they are.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

/// Docker Hub's key in config.json, as docker writes it.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

fn path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker")
    });
    dir.join("config.json")
}

fn read() -> Map<String, Value> {
    std::fs::read(path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

fn write(config: &Map<String, Value>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written beside and renamed over: never half a file; 0600 as docker.
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(&Value::Object(config.clone()))?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The registry part of an image name, as config.json keys it.
fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

/// The key for a server given to login/logout: Docker Hub's names all mean
/// its one key.
fn key(server: &str) -> String {
    let host = server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1" => DOCKER_HUB.to_string(),
        _ => host.to_string(),
    }
}

/// User name and password stored for the registry of `image`.
pub fn lookup(image: &str) -> Option<(String, String)> {
    let config = read();
    let entry = config.get("auths")?.get(registry_of(image))?;
    let encoded = entry.get("auth")?.as_str()?;
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

pub fn store(server: &str, user: &str, password: &str) -> std::io::Result<()> {
    let mut config = read();
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    let encoded = base64_encode(format!("{user}:{password}").as_bytes());
    auths.as_object_mut().expect("an object").insert(key(server), json!({ "auth": encoded }));
    write(&config)
}

/// Forgets a server's credentials; false if there were none.
pub fn remove(server: &str) -> std::io::Result<bool> {
    let mut config = read();
    let removed = config.get_mut("auths").and_then(Value::as_object_mut).and_then(|a| a.remove(&key(server)));
    if removed.is_some() {
        write(&config)?;
    }
    Ok(removed.is_some())
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pa55:word"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn images_map_to_their_registry() {
        assert_eq!(registry_of("busybox"), DOCKER_HUB);
        assert_eq!(registry_of("me/app:1"), DOCKER_HUB);
        assert_eq!(registry_of("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(key("docker.io"), DOCKER_HUB);
        assert_eq!(key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}

//! Container names: docker's rules, and random names when none is given.

use crate::error::{Error, Result};

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as docker accepts.
pub fn validate(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
        _ => false,
    };
    if ok && name.len() <= 128 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid container name \"{name}\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble", "proud",
    "quiet", "rapid", "sharp", "tender", "upbeat", "vivid", "witty", "zealous",
];
const NOUNS: &[&str] = &[
    "turing",
    "hopper",
    "lovelace",
    "ritchie",
    "thompson",
    "torvalds",
    "knuth",
    "dijkstra",
    "liskov",
    "hamilton",
    "curie",
    "noether",
    "shannon",
    "wozniak",
    "babbage",
    "kay",
    "lamport",
    "pike",
    "stallman",
    "tanenbaum",
];

/// A docker-like `adjective_noun` name derived from the id's random bytes.
pub fn random(id: &str, attempt: usize) -> String {
    let n = usize::from_str_radix(&id[..8.min(id.len())], 16).unwrap_or(0);
    let base = format!("{}_{}", ADJECTIVES[n % ADJECTIVES.len()], NOUNS[(n / 97) % NOUNS.len()]);
    if attempt == 0 {
        base
    } else {
        format!("{base}{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_docker_names_only() {
        assert!(validate("web-1.a_b").is_ok());
        assert!(validate("").is_err());
        assert!(validate("-web").is_err());
        assert!(validate("we b").is_err());
        assert!(validate("a/b").is_err());
    }

    #[test]
    fn random_names_are_valid() {
        let n = random("0123456789abcdef", 0);
        assert!(validate(&n).is_ok());
        assert_eq!(random("0123456789abcdef", 2), format!("{n}2"));
    }
}

//! Ids and references: one rule for containers, networks and images.
//!
//! As with docker, a reference is a full id, else an exact name, else a
//! unique prefix of an id (of any length: a name is tried first). A prefix
//! that several ids share is an error that says so; no match is NotFound
//! in each kind's own words, as docker's clients expect them.

use crate::error::{Error, Result};

/// Length of the ids shown in lists and used as default names.
pub const SHORT_ID_LEN: usize = 12;

/// The short form of an id (its first 12 characters).
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(SHORT_ID_LEN)]
}

/// What a reference names.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Container,
    Network,
    Image,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Network => "network",
            Kind::Image => "image",
        }
    }

    /// Docker's message for a reference that matches nothing.
    pub fn not_found(self, reference: &str) -> Error {
        Error::NotFound(match self {
            Kind::Container => format!("No such container: {reference}"),
            Kind::Network => format!("network {reference} not found"),
            Kind::Image => format!("No such image: {reference}"),
        })
    }
}

/// Resolves `reference`: `exact` looks it up as a full id or a name,
/// `by_prefix` lists what has an id starting with it.
pub fn resolve<T>(
    kind: Kind,
    reference: &str,
    exact: impl FnOnce(&str) -> Result<Option<T>>,
    by_prefix: impl FnOnce(&str) -> Result<Vec<T>>,
) -> Result<T> {
    if reference.is_empty() {
        return Err(Error::InvalidArgument(format!("a {} name or id is required", kind.noun())));
    }
    if let Some(found) = exact(reference)? {
        return Ok(found);
    }
    let mut matches = by_prefix(reference)?;
    match matches.len() {
        0 => Err(kind.not_found(reference)),
        1 => Ok(matches.remove(0)),
        n => Err(Error::InvalidArgument(format!(
            "{n} {}s have an id starting with {reference}; use more characters",
            kind.noun()
        ))),
    }
}

/// A random 64-hex-digit identifier, like docker's ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("kernel random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(reference: &str) -> Result<&'static str> {
        let items = [("abc123", "web"), ("abd456", "db")];
        resolve(
            Kind::Network,
            reference,
            |r| Ok(items.iter().find(|(id, name)| *id == r || *name == r).map(|(_, n)| *n)),
            |r| Ok(items.iter().filter(|(id, _)| id.starts_with(r)).map(|(_, n)| *n).collect()),
        )
    }

    #[test]
    fn full_id_then_name_then_unique_prefix() {
        assert_eq!(lookup("abc123").unwrap(), "web");
        assert_eq!(lookup("db").unwrap(), "db");
        assert_eq!(lookup("abc").unwrap(), "web");
        assert!(matches!(lookup("ab"), Err(Error::InvalidArgument(m)) if m.contains("2 networks")));
        assert!(matches!(lookup("zz"), Err(Error::NotFound(m)) if m == "network zz not found"));
        assert!(matches!(lookup(""), Err(Error::InvalidArgument(_))));
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}

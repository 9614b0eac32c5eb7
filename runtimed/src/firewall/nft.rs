//! Runs `nft` through the `nftables` crate.
//!
//! Every change is one JSON document applied by one `nft -j -f <file>` run,
//! which nft turns into one kernel transaction: it applies completely or not
//! at all.
//!
//! Why not `nftables::helper::apply_ruleset`: in nftables 0.6 it pipes stdin
//! and stdout but not stderr, so nft's error message goes to the daemon's
//! stderr and the returned error carries an empty message. Instead the JSON is
//! written to a close-on-exec memfd and handed to the crate's
//! `get_current_ruleset_raw`, which runs `nft -j <args>` with all output
//! captured; the args are `-f /proc/<our pid>/fd/<memfd>`. No temporary file
//! is left behind and the memfd is not inherited by other children.

use std::ffi::CStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

use nftables::batch::Batch;
use nftables::helper::{self, DEFAULT_NFT};
use nftables::schema::Nftables;

use super::error::{FirewallError, Result};

const MEMFD_NAME: &CStr = c"runtimed-nft";

/// Applies `batch` as one nft transaction.
pub(super) fn apply(action: &'static str, batch: Batch<'_>) -> Result<()> {
    let doc = batch.to_nftables();
    let json = serde_json::to_string(&doc).map_err(|e| FirewallError::output(action, e))?;
    tracing::debug!(action, commands = doc.objects.len(), bytes = json.len(), "nft apply");
    let payload = Payload::new(&json)?;
    run(action, &["-f", &payload.path()]).map(drop)
}

/// Runs `nft -j <args>` (e.g. `list map ip t m`) and parses its JSON output.
pub(super) fn list(action: &'static str, args: &[&str]) -> Result<Nftables<'static>> {
    let out = run(action, args)?;
    serde_json::from_str(&out).map_err(|e| FirewallError::output(action, e))
}

fn run(action: &'static str, args: &[&str]) -> Result<String> {
    helper::get_current_ruleset_raw(DEFAULT_NFT, args).map_err(|e| FirewallError::from_nft(action, e))
}

/// An anonymous in-memory file holding one JSON document for nft.
struct Payload {
    file: File,
}

impl Payload {
    fn new(json: &str) -> Result<Self> {
        use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
        let fd = memfd_create(MEMFD_NAME, MemFdCreateFlag::MFD_CLOEXEC).map_err(std::io::Error::from)?;
        let mut file = File::from(fd);
        file.write_all(json.as_bytes())?;
        Ok(Payload { file })
    }

    /// A path the child nft can open although the fd is close-on-exec.
    fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }
}

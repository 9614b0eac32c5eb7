//! One blob from a registry into a file. A connection that breaks is
//! resumed where it stopped (an HTTP range request) when the registry
//! allows, else started again; the digest and size are checked here over
//! the whole file, whichever way its bytes came.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::BlobResponse;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::{Error, IoContext, Result};

/// Tries per blob: a broken connection is resumed this many times less one.
const ATTEMPTS: u32 = 5;

/// Why one attempt stopped early.
enum Stop {
    /// The transfer broke (or ended short): worth resuming.
    Cut(String),
    /// Anything else: the download fails with it.
    Fail(Error),
}

/// Where a download stands.
struct Partial {
    out: tokio::io::BufWriter<tokio::fs::File>,
    hash: Sha256,
    got: u64,
    size: u64,
}

/// Downloads `desc` to `path`, reporting the bytes received to `progress`.
/// `map` turns a registry's refusal into our error.
pub async fn blob<F: Future>(
    client: &Client,
    image: &Reference,
    desc: &OciDescriptor,
    path: &Path,
    map: impl Fn(OciDistributionError) -> Error,
    progress: impl Fn(u64) -> F,
) -> Result<()> {
    let file = tokio::fs::File::create(path).await.ctx(|| format!("create {}", path.display()))?;
    let size = u64::try_from(desc.size).unwrap_or(0);
    let mut at = Partial { out: tokio::io::BufWriter::new(file), hash: Sha256::new(), got: 0, size };
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(client, image, desc, &mut at, &map, &progress).await {
            Ok(()) if at.got == size => break,
            Ok(()) => {
                let why = format!("the transfer ended after {} of {size} bytes", at.got);
                retry_or_fail(desc, &at, tries, why).await?
            }
            Err(Stop::Cut(why)) => retry_or_fail(desc, &at, tries, why).await?,
            Err(Stop::Fail(e)) => return Err(e),
        }
    }
    at.out.flush().await.ctx(|| format!("write {}", path.display()))?;
    let got = format!("sha256:{}", hex::encode(at.hash.finalize()));
    if got != desc.digest {
        return Err(Error::InvalidArgument(format!(
            "download {0}: Invalid digest. Expected {0}, got {got}",
            desc.digest
        )));
    }
    Ok(())
}

/// Waits before the next try, or fails once the tries are used up.
async fn retry_or_fail(desc: &OciDescriptor, at: &Partial, tries: u32, why: String) -> Result<()> {
    if tries >= ATTEMPTS {
        return Err(cut_short(desc, at, why));
    }
    tracing::warn!(digest = %desc.digest, got = at.got, "download broke ({why}); resuming");
    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
    Ok(())
}

fn cut_short(desc: &OciDescriptor, at: &Partial, why: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("download {}: cut short after {} of {} bytes ({why})", desc.digest, at.got, at.size))
}

/// One request: from where the file stands to the end of the blob.
async fn attempt<F: Future>(
    client: &Client,
    image: &Reference,
    desc: &OciDescriptor,
    at: &mut Partial,
    map: &impl Fn(OciDistributionError) -> Error,
    progress: &impl Fn(u64) -> F,
) -> std::result::Result<(), Stop> {
    let response = match client.pull_blob_stream_partial(image, desc, at.got, None).await {
        Ok(r) => r,
        Err(OciDistributionError::RequestError(e)) if at.got > 0 => return Err(Stop::Cut(e.to_string())),
        // E.g. a blob shorter than its manifest says: its rest is refused.
        Err(e) if at.got > 0 => return Err(Stop::Fail(cut_short(desc, at, map(e)))),
        Err(e) => return Err(Stop::Fail(map(e))),
    };
    let mut stream = match response {
        BlobResponse::Partial(s) => s,
        BlobResponse::Full(s) if at.got == 0 => s,
        BlobResponse::Full(s) => {
            // The registry ignored the range: start the file again.
            restart(at).await.map_err(Stop::Fail)?;
            s
        }
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Stop::Cut(e.to_string()))?;
        at.got += chunk.len() as u64;
        if at.got > at.size {
            // Never written: a hostile registry could fill the disk.
            return Err(Stop::Fail(Error::InvalidArgument(format!(
                "download {}: the registry sent more than the {} bytes its manifest gives",
                desc.digest, at.size
            ))));
        }
        at.hash.update(&chunk);
        at.out.write_all(&chunk).await.ctx(|| "write a downloaded blob".into()).map_err(Stop::Fail)?;
        progress(at.got).await;
    }
    Ok(())
}

async fn restart(at: &mut Partial) -> Result<()> {
    at.out.flush().await.ctx(|| "write a downloaded blob".into())?;
    let file = at.out.get_mut();
    file.set_len(0).await.ctx(|| "truncate a downloaded blob".into())?;
    file.rewind().await.ctx(|| "rewind a downloaded blob".into())?;
    (at.hash, at.got) = (Sha256::new(), 0);
    Ok(())
}

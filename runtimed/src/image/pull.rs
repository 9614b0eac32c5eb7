//! `pull`: an image from an OCI distribution registry (the protocol is
//! oci-client's). The manifest for this platform is resolved, its layers
//! are downloaded in parallel, each checked against its digest before it
//! is unpacked (and its content against the config's diff id), and the
//! image is recorded only when every layer is in place.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::ImageConfiguration;
use tokio::sync::mpsc;

use super::layers::{hex_of, LayerStore};
use super::{config, reference, ImageRecord, ImageStore};
use crate::error::{Error, IoContext, Result};
use crate::records::image::LayerBlob;
use crate::util::TempFile;

/// Layers downloaded at once (docker's default is 3).
const PARALLEL: usize = 3;

pub struct PullOptions {
    pub reference: String,
    /// `os/arch[/variant]`; this machine's when empty.
    pub platform: String,
    /// User name and password (or token) for the registry.
    pub auth: Option<(String, String)>,
}

/// What a pull tells its client as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    Layer { id: String, status: &'static str, current: u64, total: u64 },
    Digest(String),
}

type Events = mpsc::Sender<Progress>;

impl ImageStore {
    pub async fn pull(&self, opts: PullOptions, events: Events) -> Result<ImageRecord> {
        let r = reference::parse(&opts.reference)?;
        let platform = Platform::parse(&opts.platform)?;
        let wanted = platform.to_string();
        let unmatched = platform.unmatched.clone();
        let client = Client::new(self.client_config(&r, platform));
        let auth = match &opts.auth {
            Some((user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
            None => RegistryAuth::Anonymous,
        };
        let (manifest, digest, config_json) =
            manifest_and_config(&client, &r, &auth).await.map_err(|e| {
                match unmatched.load(std::sync::atomic::Ordering::SeqCst) {
                    true => {
                        Error::NotFound(format!("{}: no manifest for platform {wanted} in the image index", r.whole()))
                    }
                    false => registry_error(&r, e),
                }
            })?;
        let image_config: ImageConfiguration = serde_json::from_str(&config_json)
            .map_err(|e| Error::InvalidArgument(format!("{}: invalid image config: {e}", r.whole())))?;
        let diff_ids = image_config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidArgument(format!(
                "{}: the manifest has {} layers but the config {}",
                r.whole(),
                manifest.layers.len(),
                diff_ids.len()
            )));
        }
        let id = hex_of(&manifest.config.digest)?;
        let keys = diff_ids.iter().map(|d| LayerStore::key(d)).collect::<Result<Vec<_>>>()?;
        let blobs = manifest.layers.iter().map(|l| hex_of(&l.digest)).collect::<Result<Vec<_>>>()?;
        let busy: Vec<_> = keys.iter().chain(&blobs).map(|k| self.layers.busy(k)).collect();
        let fetch = Fetch {
            client: Arc::new(client),
            reference: r.clone(),
            layers: self.layers.clone(),
            events,
            unpacking: Arc::default(),
        };
        let jobs: Vec<_> =
            manifest.layers.iter().zip(&keys).map(|(desc, key)| fetch.layer(desc.clone(), key.clone())).collect();
        let fetched = futures::stream::iter(jobs).buffer_unordered(PARALLEL).try_collect::<Vec<()>>().await;
        if let Err(e) = fetched {
            // What the failed pull fetched goes, unless an image uses it,
            // once no unpack of it is still running.
            let _settled = fetch.unpacking.write().await;
            drop(busy);
            self.sweep().await;
            return Err(e);
        }
        self.save_blob(&manifest.config.digest, config_json.as_bytes()).await?;
        let _ = fetch.events.send(Progress::Digest(digest.clone())).await;
        let size = keys.iter().map(|k| super::dir_size(&self.layers.path(k))).sum();
        let created = image_config.created().as_deref().and_then(|c| humantime::parse_rfc3339(c).ok());
        let record = ImageRecord {
            id,
            name: reference::familiar(&r),
            size,
            created_at: created.map(crate::util::nanos_of).unwrap_or_else(crate::util::now_nanos),
            layers: keys,
            config: Some(config::from_oci(&image_config)),
            digest: Some(digest),
            tags: Vec::new(),
            blobs: manifest
                .layers
                .iter()
                .map(|l| LayerBlob { digest: l.digest.clone(), media_type: l.media_type.clone() })
                .collect(),
        };
        self.record(record).await
    }

    /// Whether a registry takes these credentials: a tag listing with
    /// them is refused only when they are wrong.
    pub async fn check_login(&self, server: &str, user: &str, password: &str) -> Result<()> {
        let server = match server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/') {
            "" | "index.docker.io/v1" | "index.docker.io" => "docker.io",
            s => s,
        };
        let probe = reference::parse(&format!("{server}/library/login-check"))?;
        let client = Client::new(self.client_config(&probe, Platform::parse("")?));
        let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
        let checked = match client.auth(&probe, &auth, oci_client::RegistryOperation::Pull).await {
            Ok(_) => client.list_tags(&probe, &auth, Some(1), None).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match checked.map_err(|e| registry_error(&probe, e)) {
            Ok(()) | Err(Error::NotFound(_)) => Ok(()),
            Err(Error::Unauthenticated(_)) => Err(Error::Unauthenticated(format!(
                "login to {server} failed: unauthorized: incorrect username or password"
            ))),
            Err(e) => Err(e),
        }
    }

    fn client_config(&self, r: &Reference, platform: Platform) -> ClientConfig {
        let host = r.resolve_registry().to_string();
        let insecure = self.insecure.contains(&host) || is_loopback(&host);
        ClientConfig {
            // Plain HTTP only where allowed: loopback (as docker) and the
            // daemon's --insecure-registry list.
            protocol: if insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            platform_resolver: Some(Box::new(move |m: &[ImageIndexEntry]| platform.pick(m))),
            ..Default::default()
        }
    }

    async fn save_blob(&self, digest: &str, data: &[u8]) -> Result<()> {
        let path = self.layers.blob(digest)?;
        let tmp = self.layers.blob_tmp();
        tokio::fs::write(&tmp, data).await.ctx(|| format!("write {}", tmp.display()))?;
        tokio::fs::rename(&tmp, &path).await.ctx(|| format!("write {}", path.display()))
    }
}

/// One pull's shared parts, for its layer downloads.
struct Fetch {
    client: Arc<Client>,
    reference: Reference,
    layers: LayerStore,
    events: Events,
    /// Held (shared) by each unpack while it runs. A failed pull drops its
    /// other jobs, but an unpack on a blocking thread runs on: the pull
    /// waits for them (taking it whole) before it sweeps what it fetched.
    unpacking: Arc<tokio::sync::RwLock<()>>,
}

impl Fetch {
    async fn layer(&self, desc: OciDescriptor, key: String) -> Result<()> {
        let id = short(&desc.digest);
        let total = desc.size.max(0) as u64;
        let say = |status, current| self.events.send(Progress::Layer { id: id.clone(), status, current, total });
        if self.layers.has(&key) {
            let _ = say("Already exists", total).await;
            return Ok(());
        }
        let blob = self.layers.blob(&desc.digest)?;
        if !blob.exists() {
            let _ = say("Downloading", 0).await;
            self.download(&desc, &blob, &say).await?;
        }
        let _ = say("Extracting", total).await;
        let layers = self.layers.clone();
        let k = key.clone();
        let running = self.unpacking.clone().read_owned().await;
        tokio::task::spawn_blocking(move || {
            let _running = running;
            layers.add(&k, |dest| super::unpack::layer(super::open_blob(&blob)?, dest))
        })
        .await
        .map_err(Error::internal)??;
        let _ = say("Pull complete", total).await;
        Ok(())
    }

    /// Downloads a blob to a temporary file, then moves it into place once
    /// its digest checked out.
    async fn download<F, Fut>(&self, desc: &OciDescriptor, path: &std::path::Path, say: &F) -> Result<()>
    where
        F: Fn(&'static str, u64) -> Fut,
        Fut: std::future::Future,
    {
        // Removed if the download fails, or is dropped because another
        // layer of the pull failed.
        let tmp = TempFile(self.layers.blob_tmp());
        let tmp = &tmp.0;
        let progress = |got| say("Downloading", got);
        super::download::blob(&self.client, &self.reference, desc, tmp, |e| self.error(e), progress).await?;
        crate::failpoint::hit("pull:downloaded");
        tokio::fs::rename(&tmp, path).await.ctx(|| format!("move blob {} into place", desc.digest))
    }

    fn error(&self, e: OciDistributionError) -> Error {
        registry_error(&self.reference, e)
    }
}

/// The manifest and config, fetched again if a transfer broke half-way
/// (they are small, so they start over).
async fn manifest_and_config(
    client: &Client,
    r: &Reference,
    auth: &RegistryAuth,
) -> std::result::Result<(oci_client::manifest::OciImageManifest, String, String), OciDistributionError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match client.pull_manifest_and_config(r, auth).await {
            Err(OciDistributionError::RequestError(e)) if tries < 3 && (e.is_body() || e.is_decode()) => {
                tracing::warn!(image = %r.whole(), "fetching the manifest broke ({e}); trying again");
            }
            other => return other,
        }
    }
}

/// Docker's short layer id: 12 hex digits.
fn short(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).chars().take(12).collect()
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// One registry error, in words a user can act on.
fn registry_error(r: &Reference, e: OciDistributionError) -> Error {
    use OciDistributionError as E;
    let what = reference::familiar(r);
    match e {
        E::ImageManifestNotFoundError(_) => Error::NotFound(format!("manifest for {what} not found: manifest unknown")),
        E::RegistryError { envelope, .. } if envelope.errors.iter().any(|e| is_unknown(&e.code)) => {
            Error::NotFound(format!("manifest for {what} not found: manifest unknown"))
        }
        E::AuthenticationFailure(m) => Error::Unauthenticated(format!("pull access denied for {what}: {m}")),
        E::UnauthorizedError { .. } => Error::Unauthenticated(format!(
            "pull access denied for {what}: unauthorized (log in with `runtimectl login {}`)",
            r.registry()
        )),
        E::ServerError { code: 401, .. } => {
            Error::Unauthenticated(format!("pull access denied for {what}: unauthorized"))
        }
        E::ServerError { code: 404, .. } => Error::NotFound(format!("manifest for {what} not found")),
        E::ServerError { code, message, .. } => {
            Error::Unavailable(format!("registry {} answered {code}: {message}", r.registry()))
        }
        E::RequestError(e) if root_cause(&e).contains("InvalidContentType") => Error::Unavailable(format!(
            "registry {0} answered plain HTTP to an HTTPS request (if it is meant to serve HTTP, \
             start runtimed with --insecure-registry {0})",
            r.registry()
        )),
        E::RequestError(e) if e.is_connect() || e.is_timeout() => {
            Error::Unavailable(format!("cannot reach registry {}: {}", r.registry(), root_cause(&e)))
        }
        E::DigestError(e) => Error::InvalidArgument(format!("{what}: {e}")),
        E::ImageIndexParsingNoPlatformResolverError => {
            Error::NotFound(format!("{what}: no manifest for this platform in the image index"))
        }
        other => Error::Unavailable(format!("pull {what}: {}", root_cause(&other))),
    }
}

fn is_unknown(code: &oci_client::errors::OciErrorCode) -> bool {
    use oci_client::errors::OciErrorCode as C;
    matches!(code, C::ManifestUnknown | C::NameUnknown | C::NotFound)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

/// The platform to pick from an image index.
#[derive(Clone)]
struct Platform {
    os: String,
    arch: String,
    variant: Option<String>,
    /// Set when an index had no manifest for it (the client's error then
    /// names a manifest, not the platform).
    unmatched: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl Platform {
    fn parse(s: &str) -> Result<Platform> {
        if s.is_empty() {
            return Ok(Platform::new("linux", super::config::this_arch(), None));
        }
        let parts: Vec<&str> = s.split('/').collect();
        match parts[..] {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(Error::InvalidArgument(format!("invalid platform \"{s}\": use os/arch[/variant]"))),
        }
    }

    fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let (os, arch, variant) = (os.to_string(), arch.to_string(), variant.map(str::to_string));
        Platform { os, arch, variant, unmatched: Arc::default() }
    }

    fn pick(&self, manifests: &[ImageIndexEntry]) -> Option<String> {
        let picked = manifests
            .iter()
            .find(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os.to_string() == self.os
                        && p.architecture.to_string() == self.arch
                        && (self.variant.is_none() || p.variant == self.variant)
                })
            })
            .map(|m| m.digest.clone());
        if picked.is_none() {
            self.unmatched.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        picked
    }
}

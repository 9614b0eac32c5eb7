//! The gRPC edge: services over the container manager, plus the standard
//! health and reflection services, served on a unix socket.

mod containers;
mod convert;
mod detach;
mod images;
mod networks;
mod stdio;
mod system;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use runtime_proto::v1::{containers_server, images_server, networks_server, system_server, FILE_DESCRIPTOR_SET};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;

use crate::cluster::{Cluster, ClusterConfig};
use crate::config::DaemonConfig;
use crate::container::Manager;
use crate::events::Events;
use crate::firewall::Firewall;
use crate::image::ImageStore;
use crate::keeper::Keeper;
use crate::network::Networks;
use crate::store::Store;

/// HTTP/2 flow-control windows for attached streams.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;
/// Largest HTTP/2 frame we take: a stdin chunk in one frame, not sixteen.
const MAX_FRAME: u32 = 1 << 20;

pub async fn serve(mut cfg: DaemonConfig) -> anyhow::Result<()> {
    crate::container::check_cgroups_visible().map_err(anyhow::Error::msg)?;
    let listener = bind(&cfg.socket).await?;
    crate::private::secure(&cfg).with_context(|| format!("make {} private to root", cfg.root.display()))?;
    // Absolute and through any symlink: the mount table names mounts by
    // their real path, the shims' mount template keeps those the dirs are
    // on, and a shim works from the template's root.
    for dir in [&mut cfg.root, &mut cfg.run_dir] {
        *dir = dir.canonicalize().with_context(|| format!("resolve {}", dir.display()))?;
    }
    let store = Store::open(&cfg.store_dir()).context("open the state store")?;
    let images = ImageStore::new(cfg.images_dir(), store.clone(), cfg.insecure_registries.clone())?;
    images.ensure_busybox().await.context("build the default image")?;
    let cluster = join_cluster(&cfg).await?;
    let exe = std::env::current_exe().context("find own executable")?;
    let keeper = Keeper::ensure(&exe, &cfg.run_dir.join("keeper.sock")).context("start the socket keeper")?;
    let firewall = Firewall::new(cfg.nft_table.clone());
    let networks = Networks::new(store.clone(), firewall, cfg.bridge_name.clone(), cluster, keeper)?;
    let manager = Manager::new(cfg.clone(), store, images, Events::new(), networks.clone())?;
    manager.load_dns_names().context("load container names")?;
    networks.init().await.context("set up networks")?;
    manager.reconcile().await.context("reconcile containers")?;
    networks.watch_firewall();
    networks.start_cluster()?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<containers_server::ContainersServer<containers::ContainersApi>>().await;
    health_reporter.set_serving::<images_server::ImagesServer<images::ImagesApi>>().await;
    health_reporter.set_serving::<system_server::SystemServer<system::SystemApi>>().await;
    health_reporter.set_serving::<networks_server::NetworksServer<networks::NetworksApi>>().await;
    // Both reflection versions: grpcurl and older clients still ask v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("build the reflection service")?;
    let reflection_v1alpha = reflection().build_v1alpha().context("build the reflection service")?;

    tracing::info!(socket = %cfg.socket.display(), root = %cfg.root.display(), "runtimed listening");
    let socket = cfg.socket.clone();
    tonic::transport::Server::builder()
        // HTTP/2's default 64 KiB windows hold a client's stdin to a few
        // dozen MB/s; larger ones let it flow at pipe speed.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(containers_server::ContainersServer::new(containers::ContainersApi::new(manager.clone())))
        .add_service(images_server::ImagesServer::new(images::ImagesApi::new(
            manager.images().clone(),
            manager.clone(),
        )))
        .add_service(networks_server::NetworksServer::new(networks::NetworksApi::new(
            networks.clone(),
            manager.clone(),
        )))
        .add_service(system_server::SystemServer::new(system::SystemApi::new(manager)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown_signal())
        .await
        .context("gRPC server")?;
    let _ = std::fs::remove_file(&socket);
    tracing::info!("runtimed stopped; containers keep running");
    Ok(())
}

/// Binds the socket (mode 0660, root's), refusing to steal one a live daemon
/// still serves.
async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            anyhow::bail!("another daemon is listening on {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    std::os::unix::fs::chown(path, Some(0), Some(0))?;
    Ok(listener)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The cluster client when `--cluster-store` is given. The node is known
/// by an id kept under `--root`; a clash with a live node (its explicit
/// name, or its id) stops the daemon here rather than letting two nodes
/// overwrite each other's registration.
async fn join_cluster(cfg: &DaemonConfig) -> anyhow::Result<Option<Cluster>> {
    let Some(url) = &cfg.cluster_store else {
        return Ok(None);
    };
    let advertise =
        cfg.advertise.context("--cluster-store needs --advertise ADDRESS (this node's underlay address)")?;
    let node_name = match &cfg.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname().context("hostname")?.to_string_lossy().into_owned(),
    };
    anyhow::ensure!(cfg.node_ttl >= 2, "--node-ttl must be at least 2 seconds");
    let endpoints = ClusterConfig::parse_store(url)?;
    let node_id = crate::cluster::node_id::load_or_create(&cfg.root)?;
    let name_explicit = cfg.node_name.is_some();
    let cluster_cfg = ClusterConfig { endpoints, advertise, node_id, node_name, name_explicit, ttl: cfg.node_ttl };
    let cluster = Cluster::connect(cluster_cfg).await?;
    match cluster.check_identity().await {
        Err(crate::error::Error::Unavailable(e)) => {
            tracing::warn!("{e}; the node's name and id are checked once it answers")
        }
        res => res?,
    }
    Ok(Some(cluster))
}

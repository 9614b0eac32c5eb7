//! The container manager: every lifecycle operation goes through here, and
//! every state change is in the store before it is reported.
//!
//! Per container, a [`Slot`] serialises start and remove (its `op` lock) and
//! broadcasts run state to waiters and log followers. Exit handling (in
//! `monitor`) does not take the `op` lock, so `stop` and `rm -f` can wait for
//! an exit without deadlocking.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{
    confined, etc, names, rootfs, shim_client, spec, user, validate, ContainerPaths, ContainerRecord, ContainerSpec,
};
use crate::config::DaemonConfig;
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::failpoint;
use crate::ids::{self, random_id, Kind};
use crate::image::{config, ImageRecord, ImageStore, ImageUser};
use crate::network::manager::{AttachRequest, PortsLock};
use crate::network::{netns, NetworkMode, Networks};
use crate::store::Store;
use crate::util::now_nanos;

/// Run state seen by waiters; outlives the record of an auto-removed container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunState {
    pub running: bool,
    pub exit_code: i32,
    /// Starts seen by this daemon; lets a follower wait for the next run.
    pub starts: u64,
    /// The last exit is fully handled (including `--rm`); waiters wake then.
    pub settled: bool,
}

impl RunState {
    pub fn done(&self) -> bool {
        !self.running && self.settled
    }
}

pub(super) struct Slot {
    pub op: tokio::sync::Mutex<()>,
    pub state: watch::Sender<RunState>,
    /// The container whose network namespace this one joins
    /// (`--network container:X`, by id), so removing X need not read every
    /// record to find its joiners.
    pub joins: Option<String>,
}

#[derive(Clone)]
pub struct Manager {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub cfg: DaemonConfig,
    /// This binary, re-executed as the shim.
    pub exe: PathBuf,
    pub store: Store,
    pub images: ImageStore,
    pub events: Events,
    pub networks: Networks,
    pub slots: Mutex<HashMap<String, Arc<Slot>>>,
    pub execs: Mutex<HashMap<String, super::exec::ExecEntry>>,
    /// Where shims copy their mount namespace from; None: from the host's.
    pub mount_template: Option<PathBuf>,
}

/// Readies what gives shims a mount namespace without the other
/// containers' mounts (`shim::mounts`, `shim::template`); the template's
/// path if it was made. Without these, shims take a slower way and
/// containers still run.
fn prepare_shim_mounts(cfg: &DaemonConfig) -> Option<PathBuf> {
    let drop_under = cfg.container_mount_dirs();
    let mut prepared = true;
    for dir in &drop_under {
        if let Err(e) = crate::shim::prepare_drop_dir(dir) {
            tracing::warn!("{e}");
            prepared = false;
        }
    }
    let file = cfg.mount_template();
    let scope = crate::shim::template::Scope {
        needed: vec![cfg.root.clone(), cfg.run_dir.clone()],
        drop_under: drop_under.to_vec(),
    };
    match prepared.then(|| crate::shim::template::create(&file, &scope))? {
        Ok(left_out) => {
            tracing::debug!("the shims' mount template leaves out {left_out} host mounts");
            Some(file)
        }
        Err(e) => {
            tracing::warn!("{e}");
            None
        }
    }
}

impl Manager {
    pub fn new(
        cfg: DaemonConfig,
        store: Store,
        images: ImageStore,
        events: Events,
        networks: Networks,
    ) -> Result<Self> {
        let exe = std::env::current_exe().ctx(|| "find own executable".into())?;
        // `private::secure` made the state directories, with their modes.
        let mount_template = prepare_shim_mounts(&cfg);
        rootfs::spread_layers(&cfg.containers_dir());
        let inner = Inner {
            cfg,
            exe,
            store,
            images,
            events,
            networks,
            slots: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            mount_template,
        };
        Ok(Manager { inner: Arc::new(inner) })
    }

    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    pub fn images(&self) -> &ImageStore {
        &self.inner.images
    }

    pub fn config(&self) -> &DaemonConfig {
        &self.inner.cfg
    }

    pub fn networks(&self) -> &Networks {
        &self.inner.networks
    }

    pub fn paths(&self, id: &str) -> ContainerPaths {
        ContainerPaths::new(&self.inner.cfg, id)
    }

    pub(super) fn slot(&self, rec: &ContainerRecord) -> Arc<Slot> {
        let mut slots = self.inner.slots.lock().expect("slots lock");
        slots
            .entry(rec.id.clone())
            .or_insert_with(|| {
                let state = RunState {
                    running: rec.is_running(),
                    exit_code: rec.exit_code,
                    starts: 0,
                    settled: !rec.is_running(),
                };
                let joins = match &rec.spec.network {
                    NetworkMode::Container(owner) => Some(owner.clone()),
                    _ => None,
                };
                Arc::new(Slot { op: tokio::sync::Mutex::new(()), state: watch::channel(state).0, joins })
            })
            .clone()
    }

    /// Finds a container by full id, name, or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ContainerRecord> {
        let store = &self.inner.store;
        let exact = |r: &str| -> Result<Option<ContainerRecord>> {
            match store.containers.get(r)? {
                Some(rec) => Ok(Some(rec)),
                None => store.container_id_by_name(r)?.map_or(Ok(None), |id| store.containers.get(&id)),
            }
        };
        let by_prefix = |r: &str| -> Result<Vec<ContainerRecord>> {
            let ids = store.containers.ids_with_prefix(r)?;
            Ok(ids
                .iter()
                .map(|id| store.containers.get(id))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect())
        };
        ids::resolve(Kind::Container, reference, exact, by_prefix)
    }

    pub fn list(&self, all: bool) -> Result<Vec<ContainerRecord>> {
        let mut list: Vec<_> =
            self.inner.store.containers.list()?.into_iter().filter(|c| all || c.is_running()).collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(list)
    }

    /// Creates a container: record, writable layer and network namespace.
    /// On failure nothing is left behind.
    pub async fn create(&self, name: &str, image_ref: &str, spec: ContainerSpec) -> Result<ContainerRecord> {
        if !name.is_empty() {
            names::validate(name)?;
        }
        if image_ref.is_empty() {
            return Err(Error::InvalidArgument("an image is required".into()));
        }
        let image = self.inner.images.resolve(image_ref)?;
        let mut spec = spec;
        config::apply(image.config.as_ref(), &mut spec)?;
        if spec.publish_all {
            spec.ports.extend(config::exposed_ports(image.config.as_ref())?);
        }
        validate::spec(&spec)?;
        let id = random_id();
        let name = self.choose_name(name, &id)?;
        if let NetworkMode::Container(target) = &spec.network {
            spec.network = NetworkMode::Container(self.resolve(target)?.id);
        }
        let mut rec = ContainerRecord::new(id.clone(), name, image_ref.to_string(), spec);
        rec.image_id = image.id.clone();
        let paths = self.paths(&id);
        // Only creates that publish ports need to exclude each other.
        let ports_lock = match rec.spec.ports.is_empty() {
            true => None,
            false => Some(self.inner.networks.lock_ports().await),
        };
        let prepared = self.prepare(&mut rec, &paths, ports_lock.as_ref()).await;
        failpoint::hit("create:prepared");
        let stored = match prepared {
            Ok(()) => self.inner.store.insert_container(&rec).await,
            Err(e) => Err(e),
        };
        failpoint::hit("create:stored");
        if let Err(e) = stored {
            self.release_network(&rec).await;
            teardown(&paths);
            return Err(e);
        }
        self.slot(&rec);
        self.inner.events.emit("create", &rec.id, &rec.name, &[("image", rec.image.clone())]);
        Ok(rec)
    }

    fn choose_name(&self, requested: &str, id: &str) -> Result<String> {
        if !requested.is_empty() {
            return Ok(requested.to_string());
        }
        for attempt in 0..1000 {
            let candidate = names::random(id, attempt);
            if self.inner.store.container_id_by_name(&candidate)?.is_none() {
                return Ok(candidate);
            }
        }
        Ok(ids::short_id(id).to_string())
    }

    async fn prepare(
        &self,
        rec: &mut ContainerRecord,
        paths: &ContainerPaths,
        ports: Option<&PortsLock>,
    ) -> Result<()> {
        rootfs::prepare(paths)?;
        failpoint::hit("create:layer");
        crate::util::create_private(&paths.log()).ctx(|| format!("create {}", paths.log().display()))?;
        if rec.spec.network.owns_netns() {
            let ns = paths.netns.clone();
            tokio::task::spawn_blocking(move || netns::create(&ns)).await.map_err(Error::internal)??;
        }
        failpoint::hit("create:netns");
        self.connect_network(rec, paths, ports).await
    }

    /// Plugs the container into its network (with whatever legs the
    /// network's driver adds) and assigns its published ports.
    async fn connect_network(
        &self,
        rec: &mut ContainerRecord,
        paths: &ContainerPaths,
        ports_lock: Option<&PortsLock>,
    ) -> Result<()> {
        let NetworkMode::Bridge(name) = &rec.spec.network else {
            return check_options_without_network(&rec.spec);
        };
        let net = self.inner.networks.resolve(name)?;
        if net.internal && !rec.spec.ports.is_empty() {
            return Err(Error::InvalidArgument(format!("ports cannot be published on internal network {}", net.name)));
        }
        let req = AttachRequest {
            name: rec.name.clone(),
            ip: rec.spec.ip,
            mac: rec.spec.mac,
            aliases: rec.spec.aliases.clone(),
            primary: true,
        };
        let attached = self.inner.networks.attach(&net, &rec.id, &paths.netns, &rec.endpoints, &req).await?;
        failpoint::hit("create:attached");
        for ep in &attached.endpoints {
            self.dns_register(rec, ep);
        }
        rec.endpoints.extend(attached.endpoints);
        if let Some(held) = ports_lock {
            rec.ports = self.inner.networks.assign_ports(held, &rec.spec.ports, attached.ports_to)?;
        }
        Ok(())
    }

    /// Unpublishes ports and frees every endpoint of a container.
    pub(super) async fn release_network(&self, rec: &ContainerRecord) {
        // Ports are published only while running; exit already removed them.
        let published = if rec.is_running() { rec.ports.as_slice() } else { &[] };
        if let Err(e) = self.inner.networks.unpublish(published).await {
            tracing::warn!(id = rec.short_id(), "unpublish ports: {e}");
        }
        // The namespace goes next (`teardown`), and its veths with it.
        for ep in &rec.endpoints {
            if let Err(e) = self.inner.networks.release(ep).await {
                tracing::warn!(id = rec.short_id(), "release from {}: {e}", ep.network);
            }
        }
        self.inner.networks.reap_veths_later(rec.endpoints.iter().map(|ep| ep.host_ifname.clone()).collect());
    }

    /// Starts a created or exited container; a running one is left alone.
    pub async fn start(&self, reference: &str) -> Result<ContainerRecord> {
        self.start_held(reference, false).await
    }

    /// Like `start`; with `hold`, the shim holds the output until a client
    /// attaches, so a foreground run sees everything from the first byte.
    pub(super) async fn start_held(&self, reference: &str, hold: bool) -> Result<ContainerRecord> {
        let rec = self.resolve(reference)?;
        let slot = self.slot(&rec);
        let _op = slot.op.lock().await;
        let mut rec = self.resolve(&rec.id)?;
        if rec.is_running() {
            return Ok(rec);
        }
        let paths = self.paths(&rec.id);
        let started = match self.launch(&rec, &paths, hold).await {
            Ok(s) => s,
            Err(e) => {
                let _ = rootfs::unmount(&paths);
                return Err(e);
            }
        };
        rec.mark_started(started.pid, started.shim_pid, now_nanos());
        failpoint::hit("start:published");
        self.inner.store.containers.put(&rec.id, &rec).await?;
        failpoint::hit("start:stored");
        slot.state.send_modify(|s| {
            s.running = true;
            s.settled = false;
            s.exit_code = 0;
            s.starts += 1;
        });
        self.inner.events.emit("start", &rec.id, &rec.name, &[]);
        self.watch_exit(&rec);
        Ok(rec)
    }

    /// Mounts the rootfs, ensures the namespace, writes the spec and hands
    /// the bundle to a new shim.
    async fn launch(&self, rec: &ContainerRecord, paths: &ContainerPaths, hold: bool) -> Result<shim_client::Started> {
        let image = self.image_of(rec)?;
        rootfs::prepare(paths)?;
        rootfs::mount_overlay(paths, &self.inner.images.lowerdirs(&image), rec.spec.auto_remove)?;
        failpoint::hit("start:mounted");
        // A joiner uses the owner's namespace, hostname and /etc files.
        let (netns_path, hostname, files) = match &rec.spec.network {
            NetworkMode::Container(target) => {
                let owner = self.joined_owner(target)?;
                let owner_paths = self.paths(&owner.id);
                (Some(owner_paths.netns.clone()), etc::hostname(&owner), etc::shared(&owner_paths))
            }
            mode => {
                if *mode != NetworkMode::Host && !netns::exists(&paths.netns) {
                    self.recreate_netns(rec, paths).await?;
                }
                let hostname = etc::hostname(rec);
                let files = etc::write(paths, rec, &hostname, self.nameserver(rec)?)?;
                let netns = (*mode != NetworkMode::Host).then(|| paths.netns.clone());
                (netns, hostname, files)
            }
        };
        let user = user::resolve(&paths.rootfs(), &rec.spec.user).await?;
        if !rec.spec.working_dir.is_empty() {
            let (root, dir) = (paths.rootfs(), rec.spec.working_dir.clone());
            tokio::task::spawn_blocking(move || confined::mkdir_all(&root, &dir)).await.map_err(Error::internal)??;
        }
        let inputs = spec::SpecInputs {
            id: &rec.id,
            rootfs: &paths.rootfs(),
            netns: netns_path.as_deref(),
            hostname,
            user,
            cgroups_path: PathBuf::from(format!("/{}/{}", self.inner.cfg.cgroup_parent, rec.id)),
            files,
        };
        let oci = spec::build(&rec.spec, &inputs)?;
        spec::write(&oci, paths.bundle())?;
        let _ = std::fs::remove_file(paths.exit_file());
        let _ = std::fs::remove_file(paths.old_exit_file());
        let io = shim_client::IoOptions { stdin: rec.spec.open_stdin, tty: rec.spec.tty, hold };
        let lc_root = self.inner.cfg.libcontainer_root();
        let mounts = shim_client::MountScope {
            drop_under: self.inner.cfg.container_mount_dirs().to_vec(),
            keep: [Some(paths.rootfs()), netns_path].into_iter().flatten().collect(),
            template: self.inner.mount_template.clone(),
        };
        let started = shim_client::start(&self.inner.exe, &lc_root, &rec.id, paths, io, &mounts).await?;
        failpoint::hit("start:shim");
        // The shim and the container hold the rootfs in mount namespaces of
        // their own: the host's table keeps no mount per running container,
        // which every later start would pay for (see `shim::mounts`).
        if let Err(e) = rootfs::unmount(paths) {
            tracing::warn!(id = rec.short_id(), "{e}");
        }
        // One nft transaction for all of the container's ports.
        if let Err(e) = self.inner.networks.publish(&rec.ports).await {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(started.pid), nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
        Ok(started)
    }

    /// The container owning the namespace another one joins; it must be
    /// running.
    fn joined_owner(&self, target: &str) -> Result<ContainerRecord> {
        let owner = self.resolve(target)?;
        if !owner.is_running() {
            return Err(Error::FailedPrecondition(format!(
                "cannot join the network of container {}: it is not running",
                owner.name
            )));
        }
        match &owner.spec.network {
            NetworkMode::Container(next) => self.joined_owner(next),
            NetworkMode::Host => Err(Error::InvalidArgument(format!("container {} uses the host network", owner.name))),
            _ => Ok(owner),
        }
    }

    /// After a reboot the namespace is gone: make it again and re-plug the
    /// stored endpoints with their addresses.
    async fn recreate_netns(&self, rec: &ContainerRecord, paths: &ContainerPaths) -> Result<()> {
        let ns = paths.netns.clone();
        tokio::task::spawn_blocking(move || netns::create(&ns)).await.map_err(Error::internal)??;
        for ep in &rec.endpoints {
            self.inner.networks.replug(ep, &paths.netns).await?;
        }
        Ok(())
    }

    /// The container's DNS server: its first user-defined network's gateway.
    fn nameserver(&self, rec: &ContainerRecord) -> Result<Option<std::net::Ipv4Addr>> {
        for ep in &rec.endpoints {
            let net = self.inner.networks.resolve(&ep.network_id)?;
            if net.has_dns() {
                return Ok(Some(net.gateway));
            }
        }
        Ok(None)
    }

    pub(super) fn image_of(&self, rec: &ContainerRecord) -> Result<ImageRecord> {
        self.inner
            .store
            .images
            .get(&rec.image_id)?
            .ok_or_else(|| Error::FailedPrecondition(format!("the image of container {} is gone", rec.name)))
    }

    /// Removes a container and everything it owns. A running container is
    /// refused unless `force`, which kills it first.
    pub async fn remove(&self, reference: &str, force: bool) -> Result<ContainerRecord> {
        let rec = self.resolve(reference)?;
        let slot = self.slot(&rec);
        let _op = slot.op.lock().await;
        let rec = self.resolve(&rec.id)?;
        if let Some(joiner) = self.running_joiner(&rec.id)? {
            return Err(Error::FailedPrecondition(format!(
                "cannot remove container {}: container {} uses its network namespace",
                rec.name, joiner
            )));
        }
        if !rec.can_remove(force) {
            return Err(Error::FailedPrecondition(format!(
                "cannot remove running container {}: stop it first or use force",
                rec.name
            )));
        }
        let rec = if rec.is_running() {
            self.kill_all(&rec).await?;
            let mut rx = slot.state.subscribe();
            let _ = rx.wait_for(|s| !s.running).await;
            // The exit is recorded and its ports unpublished: work from that
            // record, so the firewall is not changed a second time.
            self.resolve(&rec.id)?
        } else {
            // Not running by the record; a start cut off half-way may still
            // have left processes.
            self.clear_runtime(&rec.id).await;
            rec
        };
        failpoint::hit("rm:killed");
        self.inner.store.remove_container(&rec).await?;
        failpoint::hit("rm:unstored");
        self.release_network(&rec).await;
        failpoint::hit("rm:released");
        let paths = self.paths(&rec.id);
        tokio::task::spawn_blocking(move || teardown(&paths)).await.map_err(Error::internal)?;
        self.inner.slots.lock().expect("slots lock").remove(&rec.id);
        self.forget_execs(&rec.id);
        self.inner.events.emit("destroy", &rec.id, &rec.name, &[]);
        Ok(rec)
    }

    /// A running container that joins `id`'s network namespace. Every
    /// running container has a slot (`start` makes it).
    fn running_joiner(&self, id: &str) -> Result<Option<String>> {
        let joiner = {
            let slots = self.inner.slots.lock().expect("slots lock");
            slots
                .iter()
                .find(|(_, s)| s.joins.as_deref() == Some(id) && s.state.borrow().running)
                .map(|(joiner, _)| joiner.clone())
        };
        let Some(joiner) = joiner else { return Ok(None) };
        Ok(Some(self.inner.store.containers.get(&joiner)?.map_or(joiner, |c| c.name)))
    }

    /// Whether any container uses the image, and which.
    pub fn user_of_image(&self, image_id: &str) -> Result<Option<ImageUser>> {
        let users: Vec<_> =
            self.inner.store.containers.list()?.into_iter().filter(|c| c.image_id == image_id).collect();
        let running = users.iter().find(|c| c.is_running());
        Ok(running.or(users.first()).map(|c| ImageUser { container: c.name.clone(), running: running.is_some() }))
    }
}

/// Refuses options that mean nothing without a network of the container's
/// own: ports with `none` or `container:X`, and with `container:X` whatever
/// the owner already decides (its hostname, /etc files and addresses), as
/// docker does.
fn check_options_without_network(spec: &ContainerSpec) -> Result<()> {
    let mode = spec.network.name();
    if !spec.ports.is_empty() && matches!(spec.network, NetworkMode::Container(_) | NetworkMode::None) {
        return Err(Error::InvalidArgument(format!("ports cannot be published with network mode {mode}")));
    }
    if !matches!(spec.network, NetworkMode::Container(_)) {
        return Ok(());
    }
    let set = [
        ("--hostname", !spec.hostname.is_empty()),
        ("--dns", !spec.dns.is_empty()),
        ("--add-host", !spec.extra_hosts.is_empty()),
        ("--ip", spec.ip.is_some()),
        ("--mac-address", spec.mac.is_some()),
        ("--network-alias", !spec.aliases.is_empty()),
    ];
    match set.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(Error::InvalidArgument(format!(
            "conflicting options: {flag} and network mode {mode} (the joined container's settings apply)"
        ))),
        None => Ok(()),
    }
}

/// Removes a container's namespace, mounts and files; safe to repeat.
pub(super) fn teardown(paths: &ContainerPaths) {
    if let Err(e) = netns::remove(&paths.netns) {
        tracing::warn!("{e}");
    }
    if let Err(e) = rootfs::remove_all(paths) {
        tracing::warn!("{e}");
    }
}

//! Daemon settings: where state, runtime files and the socket live.

use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug)]
pub struct DaemonConfig {
    /// Persistent state: the sled store, images, container layers and logs.
    #[arg(long, global = true, default_value = "/var/lib/runtimed")]
    pub root: PathBuf,
    /// Runtime files that die with the machine: network namespaces,
    /// libcontainer state.
    #[arg(long, global = true, default_value = "/run/runtimed")]
    pub run_dir: PathBuf,
    /// The gRPC unix socket.
    #[arg(long, global = true, default_value = "/run/runtimed/runtimed.sock")]
    pub socket: PathBuf,
    /// Parent cgroup of every container's cgroup.
    #[arg(long, global = true, default_value = "runtimed")]
    pub cgroup_parent: String,
    /// Linux bridge of the default network.
    #[arg(long, global = true, default_value = "runtime0")]
    pub bridge_name: String,
    /// nftables table owned by this daemon (one per daemon on a host).
    #[arg(long, global = true, default_value = "runtimed")]
    pub nft_table: String,
    /// Join a cluster whose shared state is in etcd
    /// (`etcd://HOST:PORT[,HOST:PORT...]`); needed for overlay networks.
    #[arg(long, global = true)]
    pub cluster_store: Option<String>,
    /// This node's underlay address, as the other nodes reach it (its VXLAN
    /// tunnel endpoint). Required with --cluster-store.
    #[arg(long, global = true)]
    pub advertise: Option<std::net::Ipv4Addr>,
    /// Name of this node in the cluster (default: the hostname). Nodes are
    /// told apart by an id kept in `<root>/node-id`, so default names may
    /// repeat; a name given here must not be held by another live node.
    #[arg(long, global = true)]
    pub node_name: Option<String>,
    /// Seconds after which a node that stopped renewing its lease leaves the
    /// cluster (its addresses and FDB entries everywhere go with it).
    #[arg(long, global = true, default_value = "15")]
    pub node_ttl: i64,
    /// A registry (`HOST[:PORT]`) reached over plain HTTP, as docker's
    /// `insecure-registries`; loopback registries always are. Repeatable.
    #[arg(long = "insecure-registry", global = true)]
    pub insecure_registries: Vec<String>,
    /// Log filter when RUNTIMED_LOG is not set.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

impl DaemonConfig {
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn netns_dir(&self) -> PathBuf {
        self.run_dir.join("netns")
    }
    /// Each container's bundle: what is made again at every start (spec,
    /// rootfs mount point, /etc files, sockets, the shim's log), on the run
    /// dir's tmpfs as containerd keeps its bundles.
    pub fn bundles_dir(&self) -> PathBuf {
        self.run_dir.join("containers")
    }
    /// The dirs that hold containers' mounts (rootfs, netns), which a
    /// shim's mount namespace leaves out (`shim::mounts`).
    pub fn container_mount_dirs(&self) -> [PathBuf; 2] {
        [self.bundles_dir(), self.netns_dir()]
    }
    /// The mount namespace shims are copied from (`shim::template`).
    pub fn mount_template(&self) -> PathBuf {
        self.run_dir.join("mount-template")
    }
    /// libcontainer's state root (one directory per running container).
    pub fn libcontainer_root(&self) -> PathBuf {
        self.run_dir.join("libcontainer")
    }
}

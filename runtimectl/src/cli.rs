//! Command-line syntax, modelled on docker's.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::DEFAULT_HOST;

#[derive(Parser)]
#[command(name = "runtimectl", version, about = "Control runtimed containers and images")]
pub struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long, env = "RUNTIMED_HOST", default_value = DEFAULT_HOST, global = true)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create and start a container.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(CreateArgs),
    /// Start stopped containers.
    Start(StartArgs),
    /// Attach this terminal to a running container's input and output.
    Attach(AttachArgs),
    /// List containers.
    Ps(PsArgs),
    /// Stop containers (SIGTERM, then SIGKILL).
    Stop {
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u32,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers.
    Kill {
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show a container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show containers as JSON.
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to stop and print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stream lifecycle events.
    Events(FormatArg),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// List images (same as `image ls`).
    Images(FormatArg),
    /// Pull an image from a registry (same as `image pull`).
    Pull(PullArgs),
    /// Give an image another name (same as `image tag`).
    Tag { source: String, target: String },
    /// Write images to a tar archive that docker and OCI tools load (same as `image save`).
    Save(SaveArgs),
    /// Load images from a `save` archive (same as `image load`).
    Load(LoadArgs),
    /// Show how an image was built (same as `image history`).
    History { image: String },
    /// Remove images (same as `image rm`).
    Rmi {
        /// Untag images that stopped containers still use.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Log in to a registry (credentials kept in ~/.docker/config.json).
    Login(LoginArgs),
    /// Forget a registry's credentials.
    Logout { server: Option<String> },
    /// Show client and daemon versions.
    Version(FormatArg),
    /// Show daemon-wide information.
    Info(FormatArg),
    /// Daemon-wide commands (`system df`).
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// List a container's published ports.
    Port { container: String },
    /// Cluster nodes (daemons started with --cluster-store).
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Disk used by images (each shared layer once) and containers.
    Df(FormatArg),
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// List the nodes: id, name, address and whether they are alive.
    #[command(alias = "list")]
    Ls(FormatArg),
}

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create {
        /// bridge, or overlay (a network spanning the cluster's nodes).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        /// No traffic to or from outside the network.
        #[arg(long)]
        internal: bool,
        /// Driver options, e.g. --opt mtu=1400.
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network (a new interface).
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, container: String },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub read_only: bool,
    /// Network: bridge (default), none, host, container:NAME or a network name.
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Publish ports: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ranges allowed.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Static IPv4 address on the network.
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(long)]
    pub mac_address: Option<String>,
    /// Extra DNS name on a user-defined network.
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// DNS server for the container.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Extra /etc/hosts entry NAME:IP.
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Remove the container when it exits.
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Keep stdin open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Overwrite the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Publish every port the image exposes on a random host port.
    #[arg(short = 'P', long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub publish_all: bool,
    /// Security options; only seccomp=unconfined (no syscall filter).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Pull the image first: missing (when not here), always, never.
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// Platform (os/arch[/variant]) to pull, if the image is pulled.
    #[arg(long, default_value = "")]
    pub platform: String,
    /// IMAGE [COMMAND [ARG...]]
    #[arg(required = true, trailing_var_arg = true, value_name = "IMAGE [COMMAND]")]
    pub args: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PullPolicy {
    Missing,
    Always,
    Never,
}

#[derive(Args)]
pub struct PullArgs {
    /// Print only the image name.
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform (os/arch[/variant]) to take from a multi-platform image.
    #[arg(long, default_value = "")]
    pub platform: String,
    /// NAME[:TAG|@DIGEST]
    pub image: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<String>,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from this file instead of standard input.
    #[arg(short, long)]
    pub input: Option<String>,
    /// Print only the names (or ids) loaded.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry (HOST[:PORT]); Docker Hub by default.
    pub server: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub detach: bool,
    /// Forward signals the client receives to the container (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub keys: DetachKeysArg,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Args)]
pub struct DetachKeysArg {
    /// Key sequence that detaches from the container (e.g. ctrl-p,ctrl-q).
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub detach_keys: String,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach to the container's output (and exit with its code).
    #[arg(short, long)]
    pub attach: bool,
    /// Attach the container's stdin.
    #[arg(short, long)]
    pub interactive: bool,
    #[command(flatten)]
    pub keys: DetachKeysArg,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    /// Do not attach stdin.
    #[arg(long)]
    pub no_stdin: bool,
    /// Forward signals the client receives to the container (default true).
    #[arg(long, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub keys: DetachKeysArg,
    pub container: String,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only print ids.
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines from the end ("all" for everything).
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Prefix each line with its time (RFC 3339, nanoseconds).
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines from this time on: RFC 3339, Unix seconds, or a duration
    /// before now (10m, 1h30m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    pub container: String,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Give the process every capability.
    #[arg(long)]
    pub privileged: bool,
    #[command(flatten)]
    pub keys: DetachKeysArg,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Import a rootfs tarball (e.g. from `docker export`) as an image.
    Import {
        name: String,
        /// Tarball path, or - for standard input.
        file: String,
    },
    /// List images.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Write images to a tar archive that docker and OCI tools load.
    Save(SaveArgs),
    /// Load images from an archive of `docker save`, OCI tools or `save`.
    Load(LoadArgs),
    /// Show how an image was built: its steps, newest first.
    History { image: String },
    /// Show images as JSON (docker's shape).
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images no container uses: unnamed ones, or all with -a.
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove images.
    #[command(alias = "rmi")]
    Rm {
        /// Untag images that stopped containers still use.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(Args)]
pub struct FormatArg {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut argv = vec!["runtimectl", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run(r) => Ok(r),
            _ => unreachable!("a run command"),
        }
    }

    #[test]
    fn flags_parse_like_docker() {
        let r = run(&["-eFOO=1", "-p8081:80", "--detach=true", "busybox", "sh", "-c", "echo -n hi"]).unwrap();
        assert_eq!(r.create.env, ["FOO=1"]);
        assert_eq!(r.create.publish, ["8081:80"]);
        assert!(r.detach);
        assert_eq!(r.create.args, ["busybox", "sh", "-c", "echo -n hi"]);
        let r = run(&["--rm", "busybox", "ls", "-l", "--color=never"]).unwrap();
        assert_eq!(
            r.create.args,
            ["busybox", "ls", "-l", "--color=never"],
            "everything after the image is the command"
        );
        let r = run(&["-dit", "busybox"]).unwrap();
        assert!(r.detach && r.create.interactive && r.create.tty, "-dit is -d -i -t");
        let r = run(&["-it", "--rm", "busybox", "sh"]).unwrap();
        assert!(!r.detach && r.create.interactive && r.create.tty && r.create.rm);
        let err = run(&["--restart=always", "busybox", "true"]).err().expect("an unknown flag is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}

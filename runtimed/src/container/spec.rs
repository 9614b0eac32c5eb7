//! Builds the OCI runtime spec (`config.json`) of a container: Docker's
//! defaults for capabilities, masked and read-only paths, seccomp and
//! no-new-privileges, with the container's own process and namespaces.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType,
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscall, Mount,
    PosixRlimitBuilder, PosixRlimitType, Spec, User as OciUser,
};

use super::user::User;
use super::ContainerSpec;
use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities Docker grants by default (not all of them).
pub const DOCKER_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Syscalls Docker's default seccomp profile refuses (its documented list of
/// significant blocked calls); everything else is allowed. Names the kernel
/// architecture lacks are skipped by libcontainer.
const BLOCKED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "personality",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
];

/// Namespace flags `clone` may not be given, as in Docker's profile: a new
/// user namespace would hand the child every capability inside it, and the
/// others need CAP_SYS_ADMIN, which containers lack anyway.
const CLONE_NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// The file mode mask of container processes, as with docker (the daemon
/// itself runs with 077 so that its own files are private).
pub const CONTAINER_UMASK: u32 = 0o022;

/// Everything the spec depends on besides the user's request.
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub rootfs: &'a Path,
    /// `None` shares the daemon's network namespace (host mode).
    pub netns: Option<&'a Path>,
    pub hostname: String,
    pub user: User,
    pub cgroups_path: PathBuf,
    /// Files bind-mounted into the container: (host path, container path).
    pub files: Vec<(PathBuf, &'static str)>,
}

pub fn build(spec: &ContainerSpec, inputs: &SpecInputs) -> Result<Spec> {
    let mut oci = Spec::default();
    oci.set_hostname(Some(inputs.hostname.clone()));
    let mut root = oci.root().clone().unwrap_or_default();
    root.set_path(inputs.rootfs.to_path_buf()).set_readonly(Some(spec.read_only));
    oci.set_root(Some(root));
    oci.set_process(Some(process(spec, inputs)));
    let mut mounts = oci.mounts().clone().unwrap_or_default();
    for (source, dest) in &inputs.files {
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(dest))
            .set_typ(Some("bind".into()))
            .set_source(Some(source.clone()))
            .set_options(Some(vec!["rbind".into(), "rprivate".into()]));
        mounts.push(m);
    }
    oci.set_mounts(Some(mounts));
    let mut linux = oci.linux().clone().unwrap_or_default();
    linux.set_namespaces(Some(namespaces(inputs.netns)));
    linux.set_cgroups_path(Some(inputs.cgroups_path.clone()));
    if !spec.seccomp_unconfined {
        linux.set_seccomp(Some(seccomp()?));
    }
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false).set_access(Some("rwm".into())).set_typ(Some(LinuxDeviceType::A));
    resources.set_devices(Some(vec![deny_all]));
    linux.set_resources(Some(resources));
    oci.set_linux(Some(linux));
    let _ = inputs.id;
    Ok(oci)
}

fn process(spec: &ContainerSpec, inputs: &SpecInputs) -> oci_spec::runtime::Process {
    let mut process = oci_spec::runtime::Process::default();
    let args = if spec.cmd.is_empty() { vec!["sh".to_string()] } else { spec.cmd.clone() };
    process.set_args(Some(args));
    process.set_env(Some(environment(spec, &inputs.hostname)));
    let cwd = if spec.working_dir.is_empty() { "/" } else { &spec.working_dir };
    process.set_cwd(PathBuf::from(cwd));
    let mut user = OciUser::default();
    user.set_uid(inputs.user.uid).set_gid(inputs.user.gid).set_umask(Some(CONTAINER_UMASK));
    process.set_user(user);
    process.set_no_new_privileges(Some(true));
    process.set_terminal(Some(spec.tty));
    let caps: HashSet<Capability> = DOCKER_CAPABILITIES.iter().copied().collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps))
        .set_inheritable(Some(HashSet::new()))
        .set_ambient(Some(HashSet::new()));
    process.set_capabilities(Some(capabilities));
    // Containers inherit the daemon's open-file limit, as with docker; a
    // higher one would need CAP_SYS_RESOURCE.
    let (soft, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let nofile = PosixRlimitBuilder::default().typ(PosixRlimitType::RlimitNofile).hard(hard).soft(soft).build();
    process.set_rlimits(nofile.ok().map(|r| vec![r]));
    process
}

/// Default PATH and HOSTNAME, overridden by the user's entries.
fn environment(spec: &ContainerSpec, hostname: &str) -> Vec<String> {
    let mut defaults = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={hostname}")];
    if spec.tty {
        // As docker: programs on a terminal need to know which kind.
        defaults.push("TERM=xterm".to_string());
    }
    merge_env(&defaults, &spec.env)
}

/// `base` overridden by `over`; a key given twice keeps its last value
/// (linear: environments may be large).
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let all: Vec<&String> = base.iter().chain(over).collect();
    let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
    let last: HashMap<String, usize> = all.iter().enumerate().map(|(i, e)| (key(e), i)).collect();
    all.iter().enumerate().filter(|(i, e)| last[&key(e)] == *i).map(|(_, e)| (*e).clone()).collect()
}

/// What an exec runs, on top of the container's own process settings.
pub struct ExecProcess<'a> {
    pub cmd: &'a [String],
    pub env: &'a [String],
    pub cwd: Option<&'a str>,
    pub user: User,
    pub tty: bool,
    pub privileged: bool,
}

/// The container's process (capabilities, limits, environment) with the
/// exec's command, environment, directory, user and terminal: the
/// `process.json` libcontainer's tenant builder takes. The bundle's spec is
/// the daemon's own file, in a directory only root can reach.
pub fn exec_process(bundle: &Path, e: &ExecProcess) -> Result<oci_spec::runtime::Process> {
    let spec = Spec::load(bundle.join("config.json"))
        .map_err(|err| Error::internal(format!("read {}/config.json: {err}", bundle.display())))?;
    let mut process = spec.process().clone().unwrap_or_default();
    let mut base = process.env().clone().unwrap_or_default();
    if e.tty {
        base.push("TERM=xterm".to_string());
    }
    process.set_args(Some(e.cmd.to_vec())).set_env(Some(merge_env(&base, e.env))).set_terminal(Some(e.tty));
    if let Some(cwd) = e.cwd {
        process.set_cwd(PathBuf::from(cwd));
    }
    let mut user = OciUser::default();
    user.set_uid(e.user.uid).set_gid(e.user.gid).set_umask(Some(CONTAINER_UMASK));
    process.set_user(user);
    if e.privileged {
        // Every capability this daemon holds: one it lacks cannot be given.
        let held = own_bounding_set();
        let all: HashSet<Capability> = ALL_CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| held & (1 << bit) != 0)
            .filter_map(|(_, name)| serde_json::from_value(serde_json::Value::String(format!("CAP_{name}"))).ok())
            .collect();
        let mut caps = LinuxCapabilities::default();
        caps.set_bounding(Some(all.clone()))
            .set_effective(Some(all.clone()))
            .set_permitted(Some(all))
            .set_inheritable(Some(HashSet::new()))
            .set_ambient(Some(HashSet::new()));
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}

/// This process's capability bounding set, as a bit mask.
fn own_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).unwrap_or("0");
    u64::from_str_radix(line.trim(), 16).unwrap_or(0)
}

/// Every capability of Linux 6.x in kernel order (bit numbers), for
/// `exec --privileged`.
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn namespaces(netns: Option<&Path>) -> Vec<LinuxNamespace> {
    let kinds = [LinuxNamespaceType::Pid, LinuxNamespaceType::Ipc, LinuxNamespaceType::Uts, LinuxNamespaceType::Mount];
    let mut list: Vec<LinuxNamespace> = kinds
        .into_iter()
        .map(|typ| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(typ);
            ns
        })
        .collect();
    if let Some(path) = netns {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(LinuxNamespaceType::Network).set_path(Some(path.to_path_buf()));
        list.push(ns);
    }
    list
}

fn seccomp() -> Result<LinuxSeccomp> {
    let blocked = denied(BLOCKED_SYSCALLS, libc::EPERM);
    let mut clone_ns = denied(&["clone"], libc::EPERM);
    clone_ns.set_args(Some(clone_namespace_args()?));
    // ENOSYS, so that libc falls back to clone, where the flags are visible
    // to the filter (clone3 passes them in memory it cannot read).
    let clone3 = denied(&["clone3"], libc::ENOSYS);
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow).set_syscalls(Some(vec![blocked, clone_ns, clone3]));
    Ok(profile)
}

/// A rule failing `names` with `errno`.
fn denied(names: &[&str], errno: libc::c_int) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|s| s.to_string()).collect())
        .set_action(LinuxSeccompAction::ScmpActErrno)
        .set_errno_ret(Some(errno as u32));
    rule
}

/// One comparison per flag, `(flags & FLAG) == FLAG`; comparisons on the
/// same argument are separate rules, so any one flag matches. The mask is
/// given as both values because runtimes disagree on which one is the mask.
fn clone_namespace_args() -> Result<Vec<oci_spec::runtime::LinuxSeccompArg>> {
    CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag as u64)
                .value_two(flag as u64)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .map_err(|e| Error::internal(format!("seccomp rule: {e}")))
        })
        .collect()
}

/// Writes `config.json` into the bundle directory.
pub fn write(spec: &Spec, bundle: &Path) -> Result<()> {
    let data = serde_json::to_vec_pretty(spec).map_err(|e| Error::internal(format!("spec: {e}")))?;
    crate::util::write_atomic(&bundle.join("config.json"), &data)
        .map_err(|e| Error::io(format!("write {}/config.json", bundle.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(rootfs: &'a Path, netns: Option<&'a Path>) -> SpecInputs<'a> {
        SpecInputs {
            id: "abc",
            rootfs,
            netns,
            hostname: "h1".into(),
            user: User { uid: 33, gid: 33 },
            cgroups_path: "/runtimed/abc".into(),
            files: vec![("/c/hosts".into(), "/etc/hosts")],
        }
    }

    #[test]
    fn docker_defaults_and_user_settings() {
        let cs = ContainerSpec {
            cmd: vec!["echo".into(), "hi".into()],
            env: vec!["A=1".into(), "PATH=/bin".into()],
            read_only: true,
            ..Default::default()
        };
        let root = Path::new("/r");
        let ns = Path::new("/run/ns/abc");
        let spec = build(&cs, &inputs(root, Some(ns))).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["echo", "hi"]);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"PATH=/bin".to_string()) && env.contains(&"A=1".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert_eq!(p.user().uid(), 33);
        let caps = p.capabilities().as_ref().unwrap().effective().as_ref().unwrap();
        assert_eq!(caps.len(), DOCKER_CAPABILITIES.len());
        assert!(!caps.contains(&Capability::SysAdmin));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        let net = linux.namespaces().as_ref().unwrap().iter().find(|n| n.typ() == LinuxNamespaceType::Network);
        assert_eq!(net.unwrap().path().as_deref(), Some(ns));
        assert!(linux.masked_paths().as_ref().unwrap().contains(&"/proc/kcore".to_string()));
        assert!(linux.readonly_paths().as_ref().unwrap().contains(&"/proc/sys".to_string()));
        assert!(linux.seccomp().is_some());
        let hosts = spec.mounts().as_ref().unwrap().iter().find(|m| m.destination() == Path::new("/etc/hosts"));
        assert_eq!(hosts.unwrap().source().as_deref(), Some(Path::new("/c/hosts")));
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let spec = build(&ContainerSpec::default(), &inputs(Path::new("/r"), None)).unwrap();
        let nss = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(nss.iter().all(|n| n.typ() != LinuxNamespaceType::Network));
        assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap(), &["sh"]);
    }
}

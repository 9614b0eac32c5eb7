//! Signal dispositions for the processes the shim starts.

/// Runs `f` (which forks the container's processes) with every signal at
/// its default disposition and none blocked, so the container starts as
/// from a fresh shell: Rust ignores SIGPIPE at start, `nohup` ignores
/// SIGHUP, and an ignored signal stays ignored across exec. The shim's own
/// dispositions are restored afterwards (it must survive a closed pipe).
pub fn with_default_signals<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let saved: Vec<(i32, KernelSigaction)> = (1..=64)
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter_map(|sig| rt_sigaction(sig, &KernelSigaction::default()).map(|old| (sig, old)))
        .collect();
    let mut mask = SigSet::empty();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), Some(&mut mask));
    let out = f();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
    for (sig, old) in saved {
        rt_sigaction(sig, &old);
    }
    out
}

/// The kernel's `struct sigaction` (not libc's): glibc refuses to touch
/// the real-time signals it reserves, which may still be inherited ignored.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets `sig`'s disposition to `act`; returns the previous one.
fn rt_sigaction(sig: i32, act: &KernelSigaction) -> Option<KernelSigaction> {
    let mut old = KernelSigaction::default();
    // SAFETY: both structs match the kernel's layout and outlive the call;
    // the shim is single-threaded and runs no handler meanwhile.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act as *const KernelSigaction,
            &mut old as *mut KernelSigaction,
            8usize,
        )
    };
    (rc == 0).then_some(old)
}

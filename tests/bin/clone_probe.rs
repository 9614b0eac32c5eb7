//! Run inside a container: tries to make namespaces with `clone` and
//! `clone3` and prints how each call ended (`clone: EPERM`, `clone3: ENOSYS`
//! or `...: created`), for the seccomp tests.

fn main() {
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: without a new stack the child continues here like after fork
    // and leaves at once.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    report("clone", pid);
    // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal,
    // stack, stack_size, tls (64 bytes, CLONE_ARGS_SIZE_VER0).
    let mut args = [0u64; 8];
    args[0] = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET) as u64;
    args[4] = libc::SIGCHLD as u64;
    // SAFETY: `args` is a valid clone_args of the size given.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), std::mem::size_of_val(&args)) };
    report("clone3", pid);
}

fn report(call: &str, pid: libc::c_long) {
    if pid == 0 {
        // SAFETY: the child exits without running anything of the parent's.
        unsafe { libc::_exit(0) };
    }
    if pid > 0 {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
        println!("{call}: created");
        return;
    }
    let name = match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => "EPERM".to_string(),
        Some(libc::ENOSYS) => "ENOSYS".to_string(),
        Some(libc::EINVAL) => "EINVAL".to_string(),
        other => format!("errno {other:?}"),
    };
    println!("{call}: {name}");
}

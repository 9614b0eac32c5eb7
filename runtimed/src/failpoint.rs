//! Crash points for the crash-consistency tests. With
//! `RUNTIMED_CRASH_AT=<name>`, a debug build kills itself with SIGKILL when
//! it reaches the point of that name, as `kill -9` or a power cut would
//! between two steps. Release builds compile the check away.

/// Dies here if this is the chosen point (debug builds only).
pub fn hit(name: &str) {
    #[cfg(debug_assertions)]
    if chosen().is_some_and(|c| c == name) {
        tracing::warn!("failpoint {name}: crashing");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    let _ = name;
}

#[cfg(debug_assertions)]
fn chosen() -> Option<&'static str> {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| std::env::var("RUNTIMED_CRASH_AT").ok()).as_deref()
}

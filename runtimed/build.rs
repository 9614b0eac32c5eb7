//! Links `runtimed` as a position-dependent executable: a PIE relocates
//! its ~750 KB of `.data.rel.ro` (vtables, static tables) at every start,
//! which made each container's shim (this binary, re-executed) carry that
//! much private memory. Without PIE the linker resolves those addresses
//! once, the pages stay clean and shared, and a shim's private memory is
//! ~0.36 MB. The price is a fixed load address for this binary's own image
//! (its libraries are still randomised), as with Go's default builds of
//! dockerd and containerd's shims.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}

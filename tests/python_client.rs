//! The API from another language: a Python grpcio client generated from our
//! .proto drives the daemon.

use std::path::PathBuf;

use integration_tests::Daemon;

/// The Python with grpcio installed: `RUNTIMED_TEST_PYTHON`, or the venv
/// that `tests/run.sh` makes.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RUNTIMED_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tests/bin/python");
    assert!(venv.exists(), "no Python with grpcio: run tests/run.sh (it creates .venv-tests)");
    venv
}

#[test]
fn python_grpc_client_drives_the_api() {
    let d = Daemon::start();
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/client.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(proto_root)
        .arg(d.socket())
        .output()
        .expect("run python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python client failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "ok");
    assert!(d.container_ids().is_empty());
}

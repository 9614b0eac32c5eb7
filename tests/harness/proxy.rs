//! A proxy in front of a test registry that breaks the first download of
//! every blob half-way (tests/harness/cutting_proxy.py), inside the
//! registry's namespace: for tests of resumed downloads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{unique, wait_for, Netns, Registry};

pub struct CuttingProxy {
    child: Child,
    log: PathBuf,
    pub port: u16,
}

impl CuttingProxy {
    /// Serves `reg` on 127.0.0.1:`port` of `ns`.
    pub fn start(ns: &Netns, reg: &Registry, port: u16) -> CuttingProxy {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/cutting_proxy.py");
        let log = PathBuf::from(format!("/tmp/{}.log", unique("proxy")));
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .arg("python3")
            .arg(&script)
            .arg(format!("http://{}", reg.addr()))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("proxy log"))
            .spawn()
            .expect("spawn python3");
        let proxy = CuttingProxy { child, log, port };
        wait_for("the cutting proxy to listen", Duration::from_secs(10), || {
            ns.exec(&format!("ss -Htln 'sport = :{port}'")).contains(&port.to_string()).then_some(())
        });
        proxy
    }

    /// What it cut and which ranges were asked for.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

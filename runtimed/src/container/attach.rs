//! Attaching to a container's stdio: the shim owns it and serves clients
//! on its control socket, so an attach survives nothing but the client, and
//! a daemon restart only asks clients to attach again.

use tokio::sync::watch;

use super::control::not_running;
use super::manager::{Manager, RunState};
use super::shim_client::ShimConn;
use crate::error::{Error, Result};
use crate::shim::frame::Attach;
use crate::shim::CONTROL_SOCKET;

/// A client attached to a container's current run.
pub struct Attached {
    pub conn: ShimConn,
    pub end: RunEnd,
}

/// The end of one run of a container, as its record tells it.
pub struct RunEnd {
    state: watch::Receiver<RunState>,
    starts: u64,
}

impl RunEnd {
    /// Waits until the run is over and handled (including `--rm`); its
    /// exit code as recorded, which holds even when the shim was killed.
    pub async fn exit_code(mut self) -> Result<i32> {
        let starts = self.starts;
        let state = self
            .state
            .wait_for(|s| s.done() && s.starts >= starts)
            .await
            .map_err(|_| Error::internal("container state channel closed"))?;
        Ok(state.exit_code)
    }
}

impl Manager {
    /// Attaches to a running container; with `start`, starts a stopped one
    /// first, its output held until this client is attached.
    pub async fn attach(
        &self,
        reference: &str,
        attach: Attach,
        size: Option<(u16, u16)>,
        start: bool,
    ) -> Result<Attached> {
        let mut rec = self.resolve(reference)?;
        if !rec.is_running() && !start {
            return Err(not_running(&rec));
        }
        // Docker's order: the client attaches, then the container starts.
        self.inner.events.emit("attach", &rec.id, &rec.name, &[]);
        if !rec.is_running() {
            rec = self.start_held(&rec.id, true).await?;
        }
        let state = self.slot(&rec).state.subscribe();
        let starts = state.borrow().starts;
        let mut conn = ShimConn::connect(&self.paths(&rec.id)).await.map_err(|e| {
            tracing::debug!(id = rec.short_id(), "connect to shim: {e}");
            not_running(&rec)
        })?;
        conn.attach(attach, size).await.map_err(|e| Error::io("attach to the shim", e))?;
        Ok(Attached { conn, end: RunEnd { state, starts } })
    }

    /// Starts a container for a local client that hands the shim its own
    /// stdio (`Frame::AttachFds`): the output is held until it does. The
    /// shim's control socket, and the end of this run.
    pub async fn start_direct(&self, reference: &str) -> Result<(std::path::PathBuf, RunEnd)> {
        let rec = self.resolve(reference)?;
        // The client attaches, then the container starts, as with `attach`.
        self.inner.events.emit("attach", &rec.id, &rec.name, &[]);
        let rec = self.start_held(&rec.id, true).await?;
        let state = self.slot(&rec).state.subscribe();
        let starts = state.borrow().starts;
        Ok((self.paths(&rec.id).bundle().join(CONTROL_SOCKET), RunEnd { state, starts }))
    }
}

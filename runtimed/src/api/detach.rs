//! A request's work runs as a task of its own. tonic drops a handler's
//! future when its client goes away (killed, timed out), and a create or
//! remove dropped between two steps leaves a namespace, an address or a
//! running process that no record owns. As a task, the work finishes (or
//! undoes itself) whatever the client does; the client may look again.

use std::future::Future;

use tonic::Status;

use crate::error::Result;

/// Runs `work` to its end even if the caller stops waiting.
pub async fn to_completion<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T, Status> {
    match tokio::spawn(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(e) => Err(Status::internal(format!("request task failed: {e}"))),
    }
}

//! Connects to the daemon's unix socket (`--host unix:///path`).

use hyper_util::rt::TokioIo;
use runtime_proto::v1::containers_client::ContainersClient;
use runtime_proto::v1::images_client::ImagesClient;
use runtime_proto::v1::networks_client::NetworksClient;
use runtime_proto::v1::system_client::SystemClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{CliError, Result};

pub const DEFAULT_HOST: &str = "unix:///run/runtimed/runtimed.sock";

#[derive(Clone)]
pub struct Client {
    channel: Channel,
}

impl Client {
    pub async fn connect(host: &str) -> Result<Client> {
        let path = host
            .strip_prefix("unix://")
            .ok_or_else(|| CliError::new(format!("unsupported host {host}: use unix:///path/to/socket")))?
            .to_string();
        let connector_path = path.clone();
        // The URI is required by tonic but unused: the connector dials the socket.
        let channel = Endpoint::try_from("http://runtimed.local")
            .map_err(|e| CliError::new(e.to_string()))?
            // Output streams at pipe speed need more than HTTP/2's 64 KiB.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .max_frame_size(1 << 20)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = connector_path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?)) }
            }))
            .await
            .map_err(|_| unreachable_daemon(&path))?;
        Ok(Client { channel })
    }

    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    pub fn networks(&self) -> NetworksClient<Channel> {
        NetworksClient::new(self.channel.clone())
    }
    pub fn system(&self) -> SystemClient<Channel> {
        SystemClient::new(self.channel.clone())
    }
}

/// Says why the socket could not be dialled: a user who lacks access is told
/// so, rather than that the daemon is down.
fn unreachable_daemon(path: &str) -> CliError {
    match std::os::unix::net::UnixStream::connect(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => CliError::new(format!(
            "permission denied while trying to connect to the runtime daemon socket at unix://{path}: \
             run as root or as a member of the socket's group"
        )),
        _ => CliError::new(format!("Cannot connect to the runtime daemon at unix://{path}. Is runtimed running?")),
    }
}

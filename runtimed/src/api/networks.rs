//! The `runtime.v1.Networks` service.

use runtime_proto::v1 as pb;
use runtime_proto::v1::networks_server::Networks;
use tonic::{Request, Response, Status};

use super::convert::{endpoint_info, network_info};
use super::detach::to_completion;
use crate::container::Manager;
use crate::error::Error;
use crate::network::manager::NetworkRequest;
use crate::network::record::format_mac;
use crate::network::{NetworkRecord, Networks as NetworkService};

pub struct NetworksApi {
    networks: NetworkService,
    /// Connect and disconnect change containers, and inspect lists them.
    containers: Manager,
}

impl NetworksApi {
    pub fn new(networks: NetworkService, containers: Manager) -> Self {
        NetworksApi { networks, containers }
    }

    fn info(&self, net: &NetworkRecord) -> Result<pb::NetworkInfo, Status> {
        let mut attached = Vec::new();
        for c in self.containers.list(true)? {
            for ep in c.endpoints.iter().filter(|e| e.network_id == net.id) {
                attached.push(pb::NetworkContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    ip_address: ep.ip.to_string(),
                    mac_address: format_mac(&ep.mac),
                });
            }
        }
        Ok(network_info(net, attached))
    }
}

fn request(r: pb::CreateNetworkRequest) -> Result<NetworkRequest, Error> {
    let subnet = match r.subnet.as_str() {
        "" => None,
        s => Some(
            s.parse().map_err(|_| Error::InvalidArgument(format!("invalid subnet {s}: use CIDR like 10.90.0.0/24")))?,
        ),
    };
    let gateway = match r.gateway.as_str() {
        "" => None,
        g => Some(g.parse().map_err(|_| Error::InvalidArgument(format!("invalid gateway {g}")))?),
    };
    if gateway.is_some() && subnet.is_none() {
        return Err(Error::InvalidArgument("--gateway needs --subnet".into()));
    }
    let mut mtu = None;
    for (k, v) in &r.options {
        match k.as_str() {
            "mtu" => mtu = Some(v.parse().map_err(|_| Error::InvalidArgument(format!("invalid mtu {v}")))?),
            other => return Err(Error::InvalidArgument(format!("unknown network option {other}"))),
        }
    }
    Ok(NetworkRequest { name: r.name, driver: r.driver, subnet, gateway, internal: r.internal, mtu })
}

#[tonic::async_trait]
impl Networks for NetworksApi {
    async fn create_network(
        &self,
        req: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::CreateNetworkResponse>, Status> {
        let (networks, r) = (self.networks.clone(), request(req.into_inner())?);
        let net = to_completion(async move { networks.create(r).await }).await?;
        Ok(Response::new(pb::CreateNetworkResponse { network: Some(self.info(&net)?) }))
    }

    async fn list_networks(
        &self,
        _: Request<pb::ListNetworksRequest>,
    ) -> Result<Response<pb::ListNetworksResponse>, Status> {
        let nets = self.networks.list()?;
        let networks = nets.iter().map(|n| self.info(n)).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn inspect_network(
        &self,
        req: Request<pb::InspectNetworkRequest>,
    ) -> Result<Response<pb::InspectNetworkResponse>, Status> {
        let net = self.networks.resolve(&req.into_inner().network)?;
        Ok(Response::new(pb::InspectNetworkResponse { network: Some(self.info(&net)?) }))
    }

    async fn remove_network(
        &self,
        req: Request<pb::RemoveNetworkRequest>,
    ) -> Result<Response<pb::RemoveNetworkResponse>, Status> {
        let (networks, network) = (self.networks.clone(), req.into_inner().network);
        let net = to_completion(async move { networks.remove(&network).await }).await?;
        Ok(Response::new(pb::RemoveNetworkResponse { id: net.id }))
    }

    async fn connect_container(
        &self,
        req: Request<pb::ConnectContainerRequest>,
    ) -> Result<Response<pb::ConnectContainerResponse>, Status> {
        let r = req.into_inner();
        let ip = match r.ip.as_str() {
            "" => None,
            s => Some(s.parse().map_err(|_| Error::InvalidArgument(format!("invalid IP address {s}")))?),
        };
        let m = self.containers.clone();
        let ep = to_completion(async move { m.connect(&r.network, &r.container, ip, r.aliases).await }).await?;
        let net = self.networks.resolve(&ep.network_id).ok();
        Ok(Response::new(pb::ConnectContainerResponse { endpoint: Some(endpoint_info(&ep, net.as_ref())) }))
    }

    async fn disconnect_container(
        &self,
        req: Request<pb::DisconnectContainerRequest>,
    ) -> Result<Response<pb::DisconnectContainerResponse>, Status> {
        let r = req.into_inner();
        let m = self.containers.clone();
        to_completion(async move { m.disconnect(&r.network, &r.container).await }).await?;
        Ok(Response::new(pb::DisconnectContainerResponse {}))
    }
}

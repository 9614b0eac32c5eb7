//! Network commands.

use std::collections::HashMap;

use runtime_proto::v1 as pb;
use serde_json::{json, Value};

use super::for_each;
use crate::cli::Format;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output;

fn network_json(n: &pb::NetworkInfo) -> Value {
    let containers: serde_json::Map<String, Value> = n
        .containers
        .iter()
        .map(|c| (c.id.clone(), json!({ "Name": c.name, "IPv4Address": c.ip_address, "MacAddress": c.mac_address })))
        .collect();
    json!({
        "Id": n.id, "Name": n.name, "Driver": n.driver, "Scope": n.scope, "Internal": n.internal,
        "IPAM": { "Subnet": n.subnet, "Gateway": n.gateway },
        "Options": { "bridge": n.bridge, "mtu": n.mtu, "vni": n.vni },
        "Created": output::rfc3339(n.created_at),
        "Containers": containers,
    })
}

pub async fn create(
    client: &Client,
    name: String,
    driver: String,
    subnet: Option<String>,
    gateway: Option<String>,
    internal: bool,
    opt: Vec<String>,
) -> Result<i32> {
    let mut options = HashMap::new();
    for o in opt {
        let (k, v) = o.split_once('=').ok_or_else(|| CliError::new(format!("invalid option {o}: use KEY=VALUE")))?;
        options.insert(k.to_string(), v.to_string());
    }
    let req = pb::CreateNetworkRequest {
        name,
        driver,
        subnet: subnet.unwrap_or_default(),
        gateway: gateway.unwrap_or_default(),
        internal,
        options,
    };
    let created = client.networks().create_network(req).await?.into_inner();
    println!("{}", created.network.map(|n| n.id).unwrap_or_default());
    Ok(0)
}

pub async fn ls(client: &Client, format: Format) -> Result<i32> {
    let nets = client.networks().list_networks(pb::ListNetworksRequest {}).await?.into_inner().networks;
    if format == Format::Json {
        println!("{}", Value::Array(nets.iter().map(network_json).collect()));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = nets
        .iter()
        .map(|n| {
            let id = output::short_id(&n.id).to_string();
            vec![id, n.name.clone(), n.driver.clone(), n.scope.clone(), n.subnet.clone(), n.bridge.clone()]
        })
        .collect();
    output::print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "BRIDGE"], &rows);
    Ok(0)
}

pub async fn inspect(client: &Client, names: Vec<String>) -> Result<i32> {
    super::inspect_each(names, |network| async move {
        let resp = client.networks().inspect_network(pb::InspectNetworkRequest { network }).await?;
        Ok(resp.into_inner().network.as_ref().map(network_json))
    })
    .await
}

pub async fn rm(client: &Client, names: Vec<String>) -> Result<i32> {
    for_each(names, |network| async move {
        client.networks().remove_network(pb::RemoveNetworkRequest { network: network.clone() }).await?;
        println!("{network}");
        Ok(())
    })
    .await
}

pub async fn connect(
    client: &Client,
    network: String,
    container: String,
    ip: Option<String>,
    aliases: Vec<String>,
) -> Result<i32> {
    let req = pb::ConnectContainerRequest { network, container, ip: ip.unwrap_or_default(), aliases };
    client.networks().connect_container(req).await?;
    Ok(0)
}

pub async fn disconnect(client: &Client, network: String, container: String) -> Result<i32> {
    client.networks().disconnect_container(pb::DisconnectContainerRequest { network, container }).await?;
    Ok(0)
}

//! Daemon-wide commands.

use runtime_proto::v1 as pb;
use serde_json::json;
use tokio_stream::StreamExt;

use crate::cli::Format;
use crate::client::Client;
use crate::error::Result;
use crate::output;

pub async fn version(client: &Client, format: Format) -> Result<i32> {
    let v = client.system().version(pb::VersionRequest {}).await?.into_inner();
    let client_version = env!("CARGO_PKG_VERSION");
    if format == Format::Json {
        let doc = json!({
            "Client": { "Version": client_version },
            "Server": { "Version": v.version, "ApiVersion": v.api_version, "Os": v.os, "Arch": v.arch, "KernelVersion": v.kernel },
        });
        println!("{doc}");
    } else {
        println!("Client:\n Version:     {client_version}\n\nServer:\n Version:     {}\n API version: {}\n OS/Arch:     {}/{}\n Kernel:      {}", v.version, v.api_version, v.os, v.arch, v.kernel);
    }
    Ok(0)
}

pub async fn info(client: &Client, format: Format) -> Result<i32> {
    let i = client.system().info(pb::InfoRequest {}).await?.into_inner();
    if format == Format::Json {
        let doc = json!({
            "Containers": i.containers, "ContainersRunning": i.running, "ContainersStopped": i.stopped,
            "Images": i.images, "RootDir": i.root, "RunDir": i.run_dir, "CgroupParent": i.cgroup_parent,
            "CgroupVersion": i.cgroup_version, "KernelVersion": i.kernel,
        });
        println!("{doc}");
    } else {
        println!(
            "Containers: {}\n Running: {}\n Stopped: {}\nImages: {}\nRoot Dir: {}\nRun Dir: {}\nCgroup Parent: {}\nCgroup Version: {}\nKernel Version: {}",
            i.containers, i.running, i.stopped, i.images, i.root, i.run_dir, i.cgroup_parent, i.cgroup_version, i.kernel
        );
    }
    Ok(0)
}

/// `node ls`: the cluster's nodes; `*` marks the one answering.
pub async fn nodes(client: &Client, format: Format) -> Result<i32> {
    let nodes = client.system().list_nodes(pb::ListNodesRequest {}).await?.into_inner().nodes;
    if format == Format::Json {
        let docs: Vec<_> = nodes
            .iter()
            .map(|n| json!({ "ID": n.id, "Name": n.name, "Address": n.address, "Alive": n.alive, "Self": n.self_, "Joined": output::rfc3339(n.joined_at) }))
            .collect();
        println!("{}", serde_json::Value::Array(docs));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let name = if n.self_ { format!("{} *", n.name) } else { n.name.clone() };
            let id = output::short_id(&n.id).to_string();
            vec![id, name, n.address.clone(), if n.alive { "alive" } else { "down" }.to_string()]
        })
        .collect();
    output::print_table(&["ID", "NAME", "ADDRESS", "STATUS"], &rows);
    Ok(0)
}

pub async fn events(client: &Client, format: Format) -> Result<i32> {
    let mut stream = client.system().events(pb::EventsRequest {}).await?.into_inner();
    while let Some(msg) = stream.next().await {
        let Some(e) = msg?.event else { continue };
        if format == Format::Json {
            let doc =
                json!({ "Action": e.action, "Id": e.id, "Name": e.name, "Time": e.time, "Attributes": e.attributes });
            println!("{doc}");
        } else {
            let mut attrs: Vec<String> = e.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            attrs.sort();
            attrs.insert(0, format!("name={}", e.name));
            println!("{} container {} {} ({})", output::rfc3339(e.time), e.action, e.id, attrs.join(", "));
        }
    }
    Ok(0)
}

/// `system df`: docker's table (TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE).
pub async fn df(client: &Client, format: Format) -> Result<i32> {
    let r = client.system().disk_usage(pb::DiskUsageRequest {}).await?.into_inner();
    let rows = [("Images", r.images.unwrap_or_default()), ("Containers", r.containers.unwrap_or_default())];
    if format == Format::Json {
        for (kind, u) in &rows {
            let row = serde_json::json!({
                "Type": kind, "TotalCount": u.total, "Active": u.active, "Size": u.size, "Reclaimable": u.reclaimable,
            });
            println!("{row}");
        }
        return Ok(0);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(kind, u)| {
            let share = (u.reclaimable * 100).checked_div(u.size).unwrap_or(0);
            vec![
                kind.to_string(),
                u.total.to_string(),
                u.active.to_string(),
                output::human_size(u.size),
                format!("{} ({share}%)", output::human_size(u.reclaimable)),
            ]
        })
        .collect();
    output::print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &table);
    Ok(0)
}

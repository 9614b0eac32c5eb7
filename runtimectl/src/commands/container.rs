//! Container commands.

use std::io::Write;

use runtime_proto::v1 as pb;
use tokio_stream::StreamExt;

use super::for_each;
use crate::cli::{CreateArgs, Format, LogsArgs, PsArgs};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::output;

/// `-e KEY` copies KEY from this environment (and is dropped if unset).
pub(super) fn env_entries(env: &[String]) -> Vec<String> {
    env.iter()
        .filter_map(
            |e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            },
        )
        .collect()
}

pub(super) fn config(a: &CreateArgs) -> Result<pb::ContainerConfig> {
    let (image, cmd) = a.args.split_first().map(|(i, c)| (i.clone(), c.to_vec())).unwrap_or_default();
    let mut ports = Vec::new();
    for spec in &a.publish {
        ports.extend(crate::ports::parse(spec).map_err(CliError::new)?);
    }
    Ok(pb::ContainerConfig {
        ports,
        ip: a.ip.clone().unwrap_or_default(),
        mac_address: a.mac_address.clone().unwrap_or_default(),
        network_aliases: a.network_alias.clone(),
        dns: a.dns.clone(),
        extra_hosts: a.add_host.clone(),
        image,
        cmd,
        env: env_entries(&a.env),
        working_dir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        hostname: a.hostname.clone().unwrap_or_default(),
        read_only: a.read_only,
        network: a.network.clone().unwrap_or_default(),
        auto_remove: a.rm,
        open_stdin: a.interactive,
        tty: a.tty,
        override_entrypoint: a.entrypoint.is_some(),
        entrypoint: a.entrypoint.iter().filter(|e| !e.is_empty()).cloned().collect(),
        publish_all: a.publish_all,
        security_opt: a.security_opt.clone(),
    })
}

fn write_output(entry: &pb::LogEntry) {
    if entry.stream == pb::Stream::Stderr as i32 {
        let _ = std::io::stderr().write_all(&entry.data);
    } else {
        let mut out = std::io::stdout();
        let _ = out.write_all(&entry.data);
        let _ = out.flush();
    }
}

pub async fn create(client: &Client, a: CreateArgs) -> Result<i32> {
    super::pull::before_create(client, &a).await?;
    let req = pb::CreateContainerRequest { name: a.name.clone().unwrap_or_default(), config: Some(config(&a)?) };
    let resp = client.containers().create_container(req).await?.into_inner();
    println!("{}", resp.id);
    Ok(0)
}

pub async fn ps(client: &Client, a: PsArgs) -> Result<i32> {
    let list =
        client.containers().list_containers(pb::ListContainersRequest { all: a.all }).await?.into_inner().containers;
    if a.quiet {
        for c in &list {
            println!("{}", output::short_id(&c.id));
        }
    } else if a.format == Format::Json {
        let rows: Vec<_> = list.iter().map(output::ps_json).collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|c| {
                vec![
                    output::short_id(&c.id).to_string(),
                    c.config.as_ref().map(|c| c.image.clone()).unwrap_or_default(),
                    output::command_text(c),
                    output::ago(c.created_at),
                    output::status_text(c),
                    c.ports.iter().map(crate::ports::display).collect::<Vec<_>>().join(", "),
                    c.name.clone(),
                ]
            })
            .collect();
        output::print_table(&["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], &rows);
    }
    Ok(0)
}

pub async fn stop(client: &Client, time: u32, names: Vec<String>) -> Result<i32> {
    for_each(names, |container| async move {
        let req = pb::StopContainerRequest { container: container.clone(), timeout_seconds: Some(time) };
        client.containers().stop_container(req).await?;
        println!("{container}");
        Ok(())
    })
    .await
}

pub async fn kill(client: &Client, signal: String, names: Vec<String>) -> Result<i32> {
    for_each(names, |container| {
        let signal = signal.clone();
        async move {
            client
                .containers()
                .kill_container(pb::KillContainerRequest { container: container.clone(), signal })
                .await?;
            println!("{container}");
            Ok(())
        }
    })
    .await
}

pub async fn rm(client: &Client, force: bool, names: Vec<String>) -> Result<i32> {
    for_each(names, |container| async move {
        client
            .containers()
            .remove_container(pb::RemoveContainerRequest { container: container.clone(), force })
            .await?;
        println!("{container}");
        Ok(())
    })
    .await
}

pub async fn logs(client: &Client, a: LogsArgs) -> Result<i32> {
    let tail = match a.tail.as_str() {
        "all" | "" => None,
        n => Some(n.parse::<i64>().map_err(|_| CliError::new(format!("invalid --tail value: {n}")))?),
    };
    let since = a.since.as_deref().map(|t| output::parse_time(t, "--since")).transpose()?;
    let until = a.until.as_deref().map(|t| output::parse_time(t, "--until")).transpose()?;
    let req = pb::ContainerLogsRequest { container: a.container, follow: a.follow, tail };
    let mut stream = client.containers().container_logs(req).await?.into_inner();
    while let Some(msg) = stream.next().await {
        let Some(entry) = msg?.entry else { continue };
        if until.is_some_and(|u| entry.time >= u) {
            break;
        }
        if since.is_some_and(|s| entry.time < s) {
            continue;
        }
        if a.timestamps {
            write_stamped(&entry);
        } else {
            write_output(&entry);
        }
    }
    Ok(0)
}

/// A log entry after its time, as `docker logs -t` prints it.
fn write_stamped(entry: &pb::LogEntry) {
    let mut data = format!("{} ", output::rfc3339(entry.time)).into_bytes();
    data.extend_from_slice(&entry.data);
    let stamped = pb::LogEntry { data: data.into(), ..entry.clone() };
    write_output(&stamped);
}

pub async fn inspect(client: &Client, names: Vec<String>) -> Result<i32> {
    super::inspect_each(names, |container| async move {
        let resp = client.containers().inspect_container(pb::InspectContainerRequest { container }).await?;
        Ok(resp.into_inner().container.as_ref().map(output::container_json))
    })
    .await
}

pub async fn wait(client: &Client, names: Vec<String>) -> Result<i32> {
    for_each(names, |container| async move {
        let resp = client.containers().wait_container(pb::WaitContainerRequest { container }).await?.into_inner();
        println!("{}", resp.exit_code);
        Ok(())
    })
    .await
}

pub async fn port(client: &Client, container: String) -> Result<i32> {
    let resp = client.containers().inspect_container(pb::InspectContainerRequest { container }).await?.into_inner();
    for p in resp.container.iter().flat_map(|c| &c.ports) {
        let ip = if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip };
        println!("{}/{} -> {ip}:{}", p.container_port, p.protocol, p.host_port);
    }
    Ok(0)
}

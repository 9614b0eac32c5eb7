//! `network connect` / `network disconnect` on existing containers. The
//! endpoints are stored in the container's record, so they survive restarts.

use std::net::Ipv4Addr;

use super::manager::Manager;
use super::{etc, ContainerRecord};
use crate::error::{Error, Result};
use crate::network::manager::{dns_names, AttachRequest};
use crate::network::{Endpoint, NetworkMode};

impl Manager {
    pub async fn connect(
        &self,
        network: &str,
        container: &str,
        ip: Option<Ipv4Addr>,
        aliases: Vec<String>,
    ) -> Result<Endpoint> {
        let rec = self.resolve(container)?;
        let slot = self.slot(&rec);
        let _op = slot.op.lock().await;
        let mut rec = self.resolve(&rec.id)?;
        let net = self.networks().resolve(network)?;
        if !matches!(rec.spec.network, NetworkMode::Bridge(_) | NetworkMode::None) {
            return Err(Error::FailedPrecondition(format!(
                "container {} shares another network namespace ({}) and cannot be connected",
                rec.name,
                rec.spec.network.name()
            )));
        }
        if rec.endpoints.iter().any(|e| e.network_id == net.id) {
            return Err(Error::AlreadyExists(format!(
                "container {} is already connected to network {}",
                rec.name, net.name
            )));
        }
        let req = AttachRequest { name: rec.name.clone(), ip, mac: None, aliases, primary: false };
        let paths = self.paths(&rec.id);
        let attached = self.networks().attach(&net, &rec.id, &paths.netns, &rec.endpoints, &req).await?;
        crate::failpoint::hit("connect:attached");
        rec.endpoints.extend(attached.endpoints.iter().cloned());
        if let Err(e) = self.inner.store.containers.put(&rec.id, &rec).await {
            for ep in &attached.endpoints {
                let _ = self.networks().detach(ep).await;
            }
            return Err(e);
        }
        for ep in &attached.endpoints {
            self.dns_register(&rec, ep);
        }
        self.refresh_hosts(&rec);
        self.inner.events.emit("connect", &rec.id, &rec.name, &[("network", net.name.clone())]);
        Ok(attached.endpoint().clone())
    }

    pub async fn disconnect(&self, network: &str, container: &str) -> Result<()> {
        let rec = self.resolve(container)?;
        let slot = self.slot(&rec);
        let _op = slot.op.lock().await;
        let mut rec = self.resolve(&rec.id)?;
        let net = self.networks().resolve(network)?;
        let Some(pos) = rec.endpoints.iter().position(|e| e.network_id == net.id) else {
            return Err(Error::NotFound(format!("container {} is not connected to network {}", rec.name, net.name)));
        };
        if pos == 0 && !rec.ports.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "container {} publishes ports through network {}; remove the container instead",
                rec.name, net.name
            )));
        }
        // The record goes first: a crash between the steps then leaves an
        // interface and address that no record owns, which restart removes.
        let ep = rec.endpoints.remove(pos);
        self.inner.store.containers.put(&rec.id, &rec).await?;
        crate::failpoint::hit("disconnect:stored");
        self.networks().detach(&ep).await?;
        self.refresh_hosts(&rec);
        self.inner.events.emit("disconnect", &rec.id, &rec.name, &[("network", net.name)]);
        Ok(())
    }

    /// A running container's /etc/hosts follows its addresses (a stopped
    /// one gets them at start).
    fn refresh_hosts(&self, rec: &ContainerRecord) {
        if !rec.is_running() {
            return;
        }
        if let Err(e) = etc::rewrite_hosts(&self.paths(&rec.id), rec) {
            tracing::warn!(id = rec.short_id(), "update /etc/hosts: {e}");
        }
    }

    /// Makes the container's name and aliases resolvable on the endpoint's
    /// network.
    pub(super) fn dns_register(&self, rec: &ContainerRecord, ep: &Endpoint) {
        self.networks().dns_add(ep, &dns_names(&rec.name, &rec.id, &ep.aliases));
        self.networks().dns_forwarders(ep, &rec.spec.dns);
    }
}

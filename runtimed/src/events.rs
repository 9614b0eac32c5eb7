//! Container lifecycle events, fanned out to every `Events` subscriber.

use std::collections::HashMap;

use runtime_proto::v1::Event;
use tokio::sync::broadcast;

use crate::util::now_nanos;

#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Events {
    pub fn new() -> Self {
        Events { tx: broadcast::channel(1024).0 }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publishes an event; nobody listening is fine.
    pub fn emit(&self, action: &str, id: &str, name: &str, attributes: &[(&str, String)]) {
        tracing::debug!(action, id, name, "event");
        let attributes: HashMap<String, String> = attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let _ = self.tx.send(Event {
            action: action.to_string(),
            id: id.to_string(),
            name: name.to_string(),
            time: now_nanos(),
            attributes,
        });
    }
}

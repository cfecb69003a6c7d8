//! MQTT 3.1.1 (rumqttc): the event as JSON (the webhook schema) published to a topic, QoS 1
//! by default, for Home Assistant and other home automation. One connection per delivery:
//! connect, publish, wait for the broker's acknowledgement (QoS 1), disconnect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Outgoing, Packet, QoS, Transport};

use super::Parts;
use crate::daemon::alerts::{Channel, DELIVERY_TIMEOUT, DeliveryError, Event};
use crate::secret::Secret;

/// Makes each client id of this process unique.
static CLIENT: AtomicU64 = AtomicU64::new(0);

/// A broker and a topic.
pub struct Mqtt {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<(String, Secret)>,
    topic: String,
    qos: QoS,
    retain: bool,
}

impl Mqtt {
    /// `mqtt[s]://[user:password@]host[:port]/topic/levels[?qos=0|1&retain=yes]`.
    pub fn new(p: &Parts) -> Result<Self, String> {
        p.only_query(&["qos", "retain"])?;
        if p.path.is_empty() {
            return Err("mqtt URLs name a topic after the host: mqtt://host/stowage/events".into());
        }
        let tls = p.tls("mqtt");
        let qos = match p.query("qos").unwrap_or("1") {
            "0" => QoS::AtMostOnce,
            "1" => QoS::AtLeastOnce,
            other => return Err(format!("?qos={other}: 0 or 1")),
        };
        let retain = match p.query("retain").unwrap_or("no") {
            "yes" | "true" => true,
            "no" | "false" => false,
            other => return Err(format!("?retain={other}: yes or no")),
        };
        Ok(Self {
            host: p.host.clone(),
            port: p.port.unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            credentials: p
                .user
                .clone()
                .map(|u| (u, Secret::new(p.password.clone().unwrap_or_default()))),
            topic: p.path.join("/"),
            qos,
            retain,
        })
    }

    /// Connects, publishes `payload` and waits until the broker has it.
    async fn publish(&self, payload: Vec<u8>) -> Result<(), DeliveryError> {
        let id = format!(
            "stowage-{}-{}",
            std::process::id(),
            CLIENT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, &self.host, self.port);
        options.set_keep_alive(Duration::from_secs(30));
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password.expose());
        }
        if self.tls {
            options.set_transport(Transport::tls_with_default_config());
        }
        let (client, mut eventloop) = AsyncClient::new(options, 4);
        client
            .publish(&self.topic, self.qos, self.retain, payload)
            .await
            .map_err(|e| DeliveryError::Request(format!("mqtt: {e}")))?;
        loop {
            let polled = eventloop.poll().await.map_err(|e| {
                DeliveryError::Request(format!("mqtt broker {}:{}: {e}", self.host, self.port))
            })?;
            let sent = matches!(polled, MqttEvent::Outgoing(Outgoing::Publish(_)));
            let acked = matches!(polled, MqttEvent::Incoming(Packet::PubAck(_)));
            if acked || (sent && self.qos == QoS::AtMostOnce) {
                break;
            }
        }
        let _ = client.disconnect().await;
        // Let the eventloop send the DISCONNECT; the broker drops the session either way.
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
        Ok(())
    }
}

impl Channel for Mqtt {
    fn name(&self) -> String {
        format!("mqtt ({}:{})", self.host, self.port)
    }

    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn timeout(&self) -> Duration {
        DELIVERY_TIMEOUT
    }

    fn deliver<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(event).expect("serializable");
            self.publish(payload).await
        })
    }
}

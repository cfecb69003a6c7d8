//! Following the engine's container events, so the daemon re-plans soon after a container
//! starts, stops, goes away or is renamed. Polling discovery remains the safety net.

use std::time::Duration;

use bollard::Docker;

/// How long after a container event the daemon re-plans.
pub const EVENT_DEBOUNCE: Duration = Duration::from_secs(2);

/// Follows the engine's container events and signals each start, stop or removal. Polling
/// discovery remains the safety net: if the event stream breaks, it is reopened with backoff.
pub async fn watch_events(docker: Docker, tx: tokio::sync::mpsc::Sender<()>) {
    use bollard::query_parameters::EventsOptions;
    use futures_util::StreamExt;
    let mut backoff = Duration::from_secs(1);
    loop {
        let filters = std::collections::HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                ["start", "die", "destroy", "rename"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        let mut stream = docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    // A full channel already means "re-plan soon".
                    let _ = tx.try_send(());
                }
                Err(e) => {
                    tracing::debug!("the Docker event stream broke: {e}");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

//! Connecting to the Kubernetes API server (kubeconfig or in-cluster service account).

use std::sync::Arc;

use kube::Client;

use crate::metrics::{Metrics, counting_client};

/// Why the API server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no usable kubeconfig or in-cluster configuration: {0}")]
    Config(#[from] kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error("the API server did not answer /version: {0}")]
    Version(#[source] kube::Error),
}

/// Builds a client from the environment (counting its requests in `metrics`, if given) and
/// checks the API server answers, returning the client and the server's version.
pub async fn connect(metrics: Option<Arc<Metrics>>) -> Result<(Client, String), ConnectError> {
    let config = kube::Config::infer().await?;
    let client = match metrics {
        Some(metrics) => counting_client(config, metrics),
        None => Client::try_from(config),
    }
    .map_err(ConnectError::Client)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(ConnectError::Version)?;
    Ok((client, version.git_version))
}

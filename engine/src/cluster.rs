//! Connecting to the Kubernetes API server (kubeconfig or in-cluster service account).

use kube::Client;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::{MethodLabel, counting_client};

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

/// Builds a client from the environment (counting its requests by method in `requests`, if
/// given) and
/// checks the API server answers, returning the client and the server's version.
pub async fn connect(
    requests: Option<Family<MethodLabel, Counter>>,
) -> Result<(Client, String), ConnectError> {
    let config = kube::Config::infer().await?;
    let client = match requests {
        Some(requests) => counting_client(config, requests),
        None => Client::try_from(config),
    }
    .map_err(ConnectError::Client)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(ConnectError::Version)?;
    Ok((client, version.git_version))
}

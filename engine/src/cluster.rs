//! Connecting to the Kubernetes API server (kubeconfig or in-cluster service account).

use kube::Client;

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

/// Builds a client from the environment and checks the API server answers, returning the
/// client and the server's version (e.g. `v1.37.2`).
pub async fn connect() -> Result<(Client, String), ConnectError> {
    let config = kube::Config::infer().await?;
    let client = Client::try_from(config).map_err(ConnectError::Client)?;
    let version = client
        .apiserver_version()
        .await
        .map_err(ConnectError::Version)?;
    Ok((client, version.git_version))
}

//! Connecting to the Kubernetes API server (kubeconfig or in-cluster service account), and the
//! kubeconfig of a program that is to connect as someone else (an agent as its ServiceAccount).

use kube::Client;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

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

/// A kubeconfig of one cluster and one user, its current context using both: serialized, the
/// file `KUBECONFIG` names for a program that is to connect as `user` (e.g. with a token file).
pub fn single_user_kubeconfig(cluster: Cluster, user: AuthInfo) -> Kubeconfig {
    const NAME: &str = "berth";
    Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(cluster),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(user),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some(NAME.into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(NAME.into()),
        ..Kubeconfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_user_kubeconfig_is_what_kube_reads() {
        let cluster = Cluster {
            server: Some("https://127.0.0.1:6443".into()),
            certificate_authority_data: Some("Q0E=".into()),
            ..Cluster::default()
        };
        let user = AuthInfo {
            token_file: Some("/run/agent/token".into()),
            ..AuthInfo::default()
        };
        let yaml = serde_saphyr::to_string(&single_user_kubeconfig(cluster, user)).unwrap();
        let read = Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(read, &Default::default())
            .await
            .unwrap();
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(
            config.auth_info.token_file.as_deref(),
            Some("/run/agent/token")
        );
    }
}

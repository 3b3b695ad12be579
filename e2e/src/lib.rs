//! Support for Berth's end-to-end tests: a real local control plane (started once per test
//! process, or reused), Kubernetes clients for it, and a namespace per test that is dumped on
//! failure and deleted afterwards; test Git repositories and real Git servers on loopback
//! (smart HTTP behind TLS, SSH); a tenant whose agent can be run; what `/proc` says about the
//! processes a run started; age keys and SOPS-encrypted files.
// Test support: a failed setup step must stop the test loudly, with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod blob;
mod control_plane;
mod git;
mod git_server;
mod http;
mod namespace;
mod operator;
pub mod policy_corpus;
pub mod procfs;
mod proxy;
pub mod sops;
mod tenant;

pub use control_plane::{ControlPlane, Harness, HarnessError, control_plane};
pub use git::{LocalRepo, TestRepo};
pub use git_server::{HttpsGitServer, RecordedRequest, SshGitServer};
pub use http::{free_addr, http_get, http_post, metric};
pub use namespace::{TestNamespace, ensure_namespace, in_namespace};
pub use operator::{E2E_LABEL, TestOperator, agent_processes, tenant_document};
pub use proxy::OutageProxy;
pub use tenant::{
    BackgroundProcess, TestTenant, agent_binary, binary, install_crds, peak_rss_kib,
    provision_tenant, request_token, token_kubeconfig,
};

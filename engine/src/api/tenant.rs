//! `Tenant`: one tenant as the platform declares it in the platform repository (cluster-scoped).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::source::GitRef;

/// A tenant: its namespaces, its repository, its quota, limits, members, network isolation and
/// allowed kinds. The operator provisions it and runs its agent.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "berth.dev",
    version = "v1alpha1",
    kind = "Tenant",
    status = "TenantStatus",
    shortname = "tn",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"Compliant","type":"string","jsonPath":".status.conditions[?(@.type==\"PolicyCompliant\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Ref","type":"string","jsonPath":".status.resolvedRef","priority":1}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces","priority":1}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The tenant's namespaces; the first is the primary one (status, reports). Default: the
    /// tenant's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The tenant's repository.
    pub source: TenantSource,
    /// ResourceQuota hard limits applied to each namespace, e.g. `{"requests.cpu": "4", "pods": "50"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quota: BTreeMap<String, String>,
    /// LimitRange defaults for containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ContainerLimits>,
    /// People and groups with access inside the tenant's namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// Network isolation; by default ingress from other namespaces is denied.
    #[serde(default)]
    pub network: NetworkIsolation,
    /// Kinds the tenant may deploy (`Kind` or `group/Kind`); default: workloads and their
    /// configuration (see docs/tenant-agent.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kinds: Vec<String>,
    /// Host names the tenant's Ingresses may claim: exact names (`shop.example.com`) or a
    /// wildcard grant (`*.team-a.example.com`, one extra label). No two tenants may claim the
    /// same host; an Ingress for any other host is denied by the default policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_hosts: Vec<String>,
    /// Stops the agent; provisioned objects stay.
    #[serde(default)]
    pub suspend: bool,
}

/// Where the tenant's manifests live.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSource {
    /// https://, ssh:// or file:// URL.
    pub url: String,
    /// The branch followed (unless `ref` pins something else).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Pins the source instead of following `branch`: a tag, the highest tag in a semver range,
    /// or a commit. Rolling back is pinning an earlier tag or commit.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub pin: Option<SourceRef>,
    /// Directory of the repository to apply ("" for the root).
    #[serde(default)]
    pub path: String,
    /// Time between reconciles, a positive Go duration such as `60s`, `1m30s` or `5m`.
    #[serde(default = "default_interval")]
    pub interval: String,
    /// A Secret in the operator's namespace with the repository credentials (`username` and
    /// `password`, or `identity` and `known_hosts`), handed only to this tenant's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// A Secret in the operator's namespace whose `token` authenticates webhook calls for this
    /// tenant (`POST /hooks/<tenant>`: GitHub-style HMAC-SHA256 signature, or bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// A Secret in the operator's namespace, labelled `berth.dev/tenant=<tenant>`, whose entries
    /// ending in `.agekey` hold the age identities that decrypt the Secrets this tenant commits
    /// encrypted with SOPS; handed only to this tenant's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption_secret: Option<String>,
    /// Values files for a Helm chart (when `path` holds a `Chart.yaml`): paths relative to
    /// the repository root, in order, later ones winning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// The release name a Helm chart is rendered as (a DNS label of at most 53 characters);
    /// default: the tenant's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Per-cluster overrides keyed by the operator's `--cluster` name: one branch per cluster,
    /// one directory per cluster, or one list of values files per cluster.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ClusterOverride>,
}

/// Prefix of every agent home namespace; no tenant may claim a namespace starting with it.
pub const AGENT_NAMESPACE_PREFIX: &str = "berth-agent-";

/// The agent home namespace of tenant `name`.
pub fn agent_namespace(name: &str) -> String {
    format!("{AGENT_NAMESPACE_PREFIX}{name}")
}

fn default_branch() -> String {
    "main".into()
}

fn default_interval() -> String {
    "60s".into()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A pin for this cluster (a tag, semver range or commit), as `source.ref`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub pin: Option<SourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Replaces `source.valuesFiles` on this cluster (the whole list, not appended to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_files: Option<Vec<String>>,
}

/// A pinned reference: exactly one of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range over the repository's tags (`>=1.2.0 <2.0.0`, `^1.2`, `~1.4`, `1.x`):
    /// the highest matching tag is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// A full commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl SourceRef {
    /// The reference, if exactly one field is set.
    pub fn git_ref(&self) -> Result<GitRef, String> {
        let set: Vec<GitRef> = [
            self.branch.clone().map(GitRef::Branch),
            self.tag.clone().map(GitRef::Tag),
            self.semver.clone().map(GitRef::Semver),
            self.commit.clone().map(GitRef::Commit),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err("ref names none of branch, tag, semver or commit".into()),
            _ => Err("ref names more than one of branch, tag, semver and commit".into()),
        }
    }
}

/// LimitRange container defaults, as quantities (`cpu`, `memory`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLimits {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_request: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, String>,
}

/// A user or group and its role in the tenant's namespaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Member {
    pub kind: MemberKind,
    pub name: String,
    pub role: MemberRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MemberKind {
    User,
    Group,
}

/// Maps to the built-in ClusterRoles `view`, `edit` and `admin`, bound per namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    View,
    Edit,
    Admin,
}

impl MemberRole {
    pub fn cluster_role(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Edit => "edit",
            Self::Admin => "admin",
        }
    }
}

/// Which traffic may enter the tenant's namespaces. Traffic between the tenant's own
/// namespaces is always allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIsolation {
    /// Other namespaces allowed to send traffic in (e.g. an ingress controller's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_from_namespaces: Vec<String>,
    /// Turns isolation off (no NetworkPolicies).
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// Ready, Provisioned, Synced, PolicyCompliant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// What the agent's last fetched commit was fetched for (the branch, or the pinned tag,
    /// semver range and the tag it chose, or commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ref: Option<String>,
    #[serde(default)]
    pub objects: u32,
    #[serde(default)]
    pub refused: u32,
    /// The Berth-owned namespace holding the tenant's agent, its status and its reports; set
    /// once the berth is provisioned in that layout (an older operator kept them in the
    /// tenant's primary namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_namespace: Option<String>,
    /// Public keys the tenant's PolicyReports are signed with, oldest first: an auditor checks
    /// each report's signature against them. Keys are only ever added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_keys: Vec<ReportKey>,
}

/// A public key of a tenant's report signatures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportKey {
    /// Names the key in signatures (a digest of the key).
    pub id: String,
    /// The Ed25519 public key, base64.
    pub public_key: String,
}

/// A status condition, in the shape of Kubernetes' `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// CamelCase reason, from a fixed set per condition.
    pub reason: String,
    pub message: String,
    /// RFC 3339 time the status last changed.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Tenant {
    /// The tenant's namespaces, defaulting to its name.
    pub fn namespaces(&self) -> Vec<String> {
        if self.spec.namespaces.is_empty() {
            vec![self.metadata.name.clone().unwrap_or_default()]
        } else {
            self.spec.namespaces.clone()
        }
    }

    /// The primary namespace: where objects that name no namespace go.
    pub fn primary_namespace(&self) -> String {
        self.namespaces().into_iter().next().unwrap_or_default()
    }

    /// The agent's home: a namespace Berth owns and no tenant member or tenant Pod has any
    /// right in, holding the agent's identity, workload, credentials, status and reports.
    pub fn agent_namespace(&self) -> String {
        agent_namespace(&self.metadata.name.clone().unwrap_or_default())
    }

    /// The reference and path for the operator's cluster: the cluster's pin or branch, else
    /// the source's pin, else its branch.
    pub fn source_for(&self, cluster: &str) -> Result<(GitRef, String), String> {
        let source = &self.spec.source;
        let o = source.clusters.get(cluster);
        let git_ref = match (
            o.and_then(|o| o.pin.as_ref()),
            o.and_then(|o| o.branch.clone()),
        ) {
            (Some(pin), _) => pin
                .git_ref()
                .map_err(|e| format!("clusters.{cluster}.{e}"))?,
            (None, Some(branch)) => GitRef::Branch(branch),
            (None, None) => match &source.pin {
                Some(pin) => pin.git_ref()?,
                None => GitRef::Branch(source.branch.clone()),
            },
        };
        let path = o
            .and_then(|o| o.path.clone())
            .unwrap_or_else(|| source.path.clone());
        Ok((git_ref, path))
    }

    /// Helm values files for the operator's cluster.
    pub fn values_files_for(&self, cluster: &str) -> Vec<String> {
        let source = &self.spec.source;
        source
            .clusters
            .get(cluster)
            .and_then(|o| o.values_files.clone())
            .unwrap_or_else(|| source.values_files.clone())
    }
}

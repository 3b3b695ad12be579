use berth_engine::api::{
    ContainerLimits, Member, MemberKind, MemberRole, Tenant, TenantSource, TenantSpec,
};
use serde_json::{Value, json};

use super::*;

fn tenant(spec: TenantSpec) -> Tenant {
    Tenant::new("team-a", spec)
}

fn spec() -> TenantSpec {
    TenantSpec {
        source: TenantSource {
            url: "https://git.example.com/team-a.git".into(),
            branch: "main".into(),
            ..TenantSource::default()
        },
        ..TenantSpec::default()
    }
}

fn context() -> ProvisionContext {
    ProvisionContext {
        operator_namespace: "berth-system".into(),
    }
}

fn names<T: kube::Resource>(objects: &[T]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_minimal_tenant_gets_its_namespace_agent_and_isolation() {
    let desired = build(&tenant(spec()), &context()).unwrap();
    assert_eq!(names(&desired.namespaces), ["/team-a"]);
    let ns_labels = desired.namespaces[0].metadata.labels.clone().unwrap();
    assert_eq!(
        ns_labels.get(TENANT_LABEL).map(String::as_str),
        Some("team-a")
    );
    assert_eq!(
        ns_labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert_eq!(
        desired.service_account.metadata.namespace.as_deref(),
        Some("team-a")
    );
    assert_eq!(
        names(&desired.roles),
        ["team-a/berth-agent", "berth-system/berth-policy-team-a"]
    );
    assert_eq!(
        names(&desired.role_bindings),
        ["team-a/berth-agent", "berth-system/berth-policy-team-a"]
    );
    assert!(desired.quotas.is_empty() && desired.limit_ranges.is_empty());
    let policy = serde_json::to_value(&desired.network_policies[0].spec).unwrap();
    assert_eq!(
        policy,
        json!({"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"berth.dev/tenant": "team-a"}}}]}]})
    );
    // The agent reads exactly its policy ConfigMap.
    let read = serde_json::to_value(&desired.roles[1].rules).unwrap();
    assert_eq!(read[0]["resourceNames"], json!(["berth-policy-team-a"]));
    assert_eq!(read[0]["verbs"], json!(["get"]));
}

#[test]
fn the_agent_role_cannot_grant_itself_more() {
    let desired = build(&tenant(spec()), &context()).unwrap();
    let rules = serde_json::to_value(&desired.roles[0].rules).unwrap();
    for rule in rules.as_array().unwrap() {
        let verbs: Vec<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for forbidden in ["*", "escalate", "bind", "impersonate"] {
            assert!(!verbs.contains(&forbidden), "{rule}");
        }
        let resources: Vec<&str> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for forbidden in ["*", "resourcequotas", "limitranges", "namespaces"] {
            assert!(!resources.contains(&forbidden), "{rule}");
        }
    }
    let reports = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["apiGroups"] == json!(["wgpolicyk8s.io"]))
        .unwrap();
    assert_eq!(reports["verbs"], json!(["get", "list", "create"]));
}

#[test]
fn every_namespace_gets_quota_limits_members_and_isolation() {
    let mut s = spec();
    s.namespaces = vec!["team-a".into(), "team-a-jobs".into()];
    s.quota = [
        ("pods".to_owned(), "10".to_owned()),
        ("requests.cpu".to_owned(), "2".to_owned()),
    ]
    .into();
    s.limits = Some(ContainerLimits {
        default: [("cpu".to_owned(), "500m".to_owned())].into(),
        ..ContainerLimits::default()
    });
    s.members = vec![Member {
        kind: MemberKind::Group,
        name: "Team A Devs".into(),
        role: MemberRole::Edit,
    }];
    s.network.allow_from_namespaces = vec!["ingress-nginx".into()];
    let desired = build(&tenant(s), &context()).unwrap();
    assert_eq!(
        names(&desired.quotas),
        ["team-a/berth-quota", "team-a-jobs/berth-quota"]
    );
    assert_eq!(
        serde_json::to_value(&desired.quotas[0].spec).unwrap(),
        json!({"hard": {"pods": "10", "requests.cpu": "2"}})
    );
    assert_eq!(
        serde_json::to_value(&desired.limit_ranges[1].spec).unwrap(),
        json!({"limits": [{"type": "Container", "default": {"cpu": "500m"}}]})
    );
    let members: Vec<&RoleBinding> = desired
        .role_bindings
        .iter()
        .filter(|b| b.role_ref.kind == "ClusterRole")
        .collect();
    assert_eq!(members.len(), 2);
    assert_eq!(
        members[0].metadata.name.as_deref(),
        Some("berth-member-edit-group-team-a-devs")
    );
    assert_eq!(members[0].role_ref.name, "edit");
    // The agent's ServiceAccount lives in the primary namespace and is bound in both.
    let agent_bindings: Vec<Value> = desired
        .role_bindings
        .iter()
        .filter(|b| b.metadata.name.as_deref() == Some(AGENT))
        .map(|b| serde_json::to_value(&b.subjects).unwrap())
        .collect();
    assert_eq!(agent_bindings.len(), 2);
    assert!(agent_bindings.iter().all(|s| s[0]["namespace"] == "team-a"));
    let ingress = serde_json::to_value(&desired.network_policies[0].spec).unwrap();
    assert_eq!(
        ingress["ingress"][0]["from"][1],
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}})
    );
}

#[test]
fn allowed_kinds_narrow_the_agent_role_and_unknown_kinds_are_refused() {
    let rules = agent_rules(&["ConfigMap".into(), "apps/Deployment".into()]).unwrap();
    assert_eq!(rules[0]["apiGroups"], json!([""]));
    assert_eq!(rules[0]["resources"], json!(["configmaps"]));
    assert_eq!(rules[1]["resources"], json!(["deployments"]));
    assert_eq!(
        agent_rules(&["example.com/Widget".into()]),
        Err(ProvisionError::UnknownKind("example.com/Widget".into()))
    );
}

#[test]
fn isolation_can_be_turned_off() {
    let mut s = spec();
    s.network.disabled = true;
    assert!(
        build(&tenant(s), &context())
            .unwrap()
            .network_policies
            .is_empty()
    );
}

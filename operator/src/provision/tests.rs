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

fn build_default(spec: TenantSpec) -> Desired {
    build(&tenant(spec), &context(), &Inputs::default()).unwrap()
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

fn label<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

#[test]
fn a_minimal_tenant_gets_its_namespace_an_agent_namespace_and_isolation() {
    let desired = build_default(spec());
    assert_eq!(
        names(&desired.namespaces),
        ["/team-a", "/berth-agent-team-a"]
    );
    let (tenant_ns, home) = (&desired.namespaces[0], &desired.namespaces[1]);
    assert_eq!(label(tenant_ns, TENANT_LABEL), Some("team-a"));
    assert_eq!(label(tenant_ns, OPERATOR_LABEL), Some("berth-system"));
    // Pod Security admission enforces the profile Berth's policy enforces, warns on restricted.
    assert_eq!(
        label(tenant_ns, "pod-security.kubernetes.io/enforce"),
        Some("baseline")
    );
    assert_eq!(
        label(tenant_ns, "pod-security.kubernetes.io/warn"),
        Some("restricted")
    );
    // The agent's namespace is not the tenant's: its isolation does not admit it, nor the
    // admission webhook cover it.
    assert_eq!(label(home, TENANT_LABEL), None);
    assert_eq!(label(home, OPERATOR_LABEL), None);
    assert_eq!(label(home, AGENT_OF_LABEL), Some("team-a"));
    assert_eq!(
        label(home, "pod-security.kubernetes.io/enforce"),
        Some("restricted")
    );
    assert_eq!(
        desired.service_account.metadata.namespace.as_deref(),
        Some("berth-agent-team-a")
    );
    assert_eq!(
        names(&desired.roles),
        [
            "team-a/berth-agent",
            "berth-agent-team-a/berth-agent",
            "berth-system/berth-policy-team-a"
        ]
    );
    assert_eq!(
        names(&desired.role_bindings),
        [
            "team-a/berth-agent",
            "berth-agent-team-a/berth-agent",
            "berth-system/berth-policy-team-a"
        ]
    );
    // Every binding of the agent names the ServiceAccount in the agent's namespace.
    for binding in &desired.role_bindings {
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            (AGENT, Some("berth-agent-team-a"))
        );
    }
    assert!(desired.quotas.is_empty() && desired.limit_ranges.is_empty());
    assert_eq!(
        names(&desired.network_policies),
        [
            "team-a/berth-isolation",
            "berth-agent-team-a/berth-agent-isolation"
        ]
    );
    let policy = serde_json::to_value(&desired.network_policies[0].spec).unwrap();
    assert_eq!(
        policy,
        json!({"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"berth.dev/tenant": "team-a"}}}]}]})
    );
    let home_policy = serde_json::to_value(&desired.network_policies[1].spec).unwrap();
    assert_eq!(
        home_policy["ingress"][0]["from"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "berth-system"}}}])
    );
    // The agent reads exactly its policy ConfigMap.
    let read = serde_json::to_value(&desired.roles[2].rules).unwrap();
    assert_eq!(read[0]["resourceNames"], json!(["berth-policy-team-a"]));
    assert_eq!(read[0]["verbs"], json!(["get"]));
}

#[test]
fn the_restricted_profile_is_enforced_by_pod_security_admission_too() {
    let inputs = Inputs {
        profile: Profile::Restricted,
        ..Inputs::default()
    };
    let desired = build(&tenant(spec()), &context(), &inputs).unwrap();
    assert_eq!(
        label(&desired.namespaces[0], "pod-security.kubernetes.io/enforce"),
        Some("restricted")
    );
}

fn rules_of(role: &Role) -> Vec<Value> {
    serde_json::to_value(&role.rules)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn the_agent_cannot_grant_itself_more_and_keeps_its_evidence_at_home() {
    let desired = build_default(spec());
    for role in &desired.roles {
        for rule in rules_of(role) {
            for forbidden in ["*", "escalate", "bind", "impersonate", "delete"] {
                let verbs = strings(&rule["verbs"]);
                // Deleting what it applied is the agent's job in the tenant's namespaces only.
                if forbidden == "delete" && role.metadata.namespace.as_deref() == Some("team-a") {
                    continue;
                }
                assert!(!verbs.contains(&forbidden), "{rule}");
            }
            for forbidden in ["*", "resourcequotas", "limitranges", "namespaces"] {
                assert!(!strings(&rule["resources"]).contains(&forbidden), "{rule}");
            }
        }
    }
    // Status and reports only in the agent's own namespace, reports create-only.
    let tenant_rules = rules_of(&desired.roles[0]);
    assert!(
        tenant_rules
            .iter()
            .all(|r| !["berth.dev", "wgpolicyk8s.io", "events.k8s.io"]
                .contains(&r["apiGroups"][0].as_str().unwrap())),
        "{tenant_rules:?}"
    );
    let home_rules = rules_of(&desired.roles[1]);
    let reports = home_rules
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
    let desired = build_default(s);
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
    assert_eq!(
        names(&members.iter().map(|b| (*b).clone()).collect::<Vec<_>>()),
        [
            "team-a/berth-member-edit-group-team-a-devs",
            "team-a-jobs/berth-member-edit-group-team-a-devs"
        ],
        "members are bound in the tenant's namespaces only"
    );
    assert_eq!(members[0].role_ref.name, "edit");
    let ingress = serde_json::to_value(&desired.network_policies[0].spec).unwrap();
    assert_eq!(
        ingress["ingress"][0]["from"][1],
        json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}})
    );
}

#[test]
fn allowed_kinds_narrow_the_agent_role_and_unknown_kinds_are_refused() {
    let none = DiscoveredKinds::new();
    let rules = serde_json::to_value(
        agent_rules(&["ConfigMap".into(), "apps/Deployment".into()], &none).unwrap(),
    )
    .unwrap();
    assert_eq!(rules[0]["apiGroups"], json!([""]));
    assert_eq!(rules[0]["resources"], json!(["configmaps"]));
    assert_eq!(rules[1]["resources"], json!(["deployments"]));
    // A kind Berth does not know by name needs its group, and the cluster to serve it.
    assert_eq!(
        agent_rules(&["Widget".into()], &none),
        Err(ProvisionError::UnknownKind("Widget".into()))
    );
    assert_eq!(
        agent_rules(&["example.com/Widget".into()], &none),
        Err(ProvisionError::KindNotServed("example.com/Widget".into()))
    );
    // Cluster-scoped kinds are refused, known or discovered.
    assert_eq!(
        agent_rules(&["rbac.authorization.k8s.io/ClusterRole".into()], &none),
        Err(ProvisionError::ClusterScopedKind(
            "rbac.authorization.k8s.io/ClusterRole".into()
        ))
    );
    let cluster_widget = DiscoveredKinds::from([(
        "example.com/Widget".to_owned(),
        DiscoveredKind {
            resource: "widgets".into(),
            namespaced: false,
        },
    )]);
    assert_eq!(
        agent_rules(&["example.com/Widget".into()], &cluster_widget),
        Err(ProvisionError::ClusterScopedKind(
            "example.com/Widget".into()
        ))
    );
}

#[test]
fn a_discovered_kind_is_granted_by_its_resource() {
    let discovered = DiscoveredKinds::from([(
        "monitoring.coreos.com/ServiceMonitor".to_owned(),
        DiscoveredKind {
            resource: "servicemonitors".into(),
            namespaced: true,
        },
    )]);
    let rules = serde_json::to_value(
        agent_rules(
            &[
                "ConfigMap".into(),
                "monitoring.coreos.com/ServiceMonitor".into(),
            ],
            &discovered,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        rules[1],
        json!({"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
    );
    // Without a cluster, such a kind is taken as the lowercase plural.
    assert_eq!(
        assume_served(&["example.com/Widget".into(), "ConfigMap".into()]),
        DiscoveredKinds::from([(
            "example.com/Widget".to_owned(),
            DiscoveredKind {
                resource: "widgets".into(),
                namespaced: true
            }
        )])
    );
}

#[test]
fn isolation_can_be_turned_off_for_the_tenant_but_not_for_its_agent() {
    let mut s = spec();
    s.network.disabled = true;
    assert_eq!(
        names(&build_default(s).network_policies),
        ["berth-agent-team-a/berth-agent-isolation"]
    );
}

#[test]
fn rendered_objects_carry_their_kind_and_api_version() {
    let objects = build_default(spec()).objects().unwrap();
    let kinds: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("v1", "Namespace"));
    assert!(kinds.contains(&("rbac.authorization.k8s.io/v1", "RoleBinding")));
    assert!(kinds.contains(&("networking.k8s.io/v1", "NetworkPolicy")));
}

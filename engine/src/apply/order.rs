//! Apply order: what others depend on goes first (accounts, RBAC, configuration, storage,
//! services), workloads next, then what points at workloads. Pruning runs in reverse.

use crate::manifest::{Manifest, ObjectRef};

/// Tiers of kinds; objects in one tier are applied concurrently, tiers one after another.
const TIERS: [&[&str]; 5] = [
    &["ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"],
    &["ConfigMap", "Secret", "PersistentVolumeClaim", "Service"],
    &[
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Pod",
        "Job",
        "CronJob",
    ],
    &["HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"],
    &[],
];

/// The tier of an object's kind; unknown kinds (custom resources) come last.
pub fn tier(object: &ObjectRef) -> usize {
    TIERS
        .iter()
        .position(|kinds| kinds.contains(&object.kind.as_str()))
        .unwrap_or(TIERS.len() - 1)
}

/// Groups manifests into tiers, each sorted by namespace, kind and name for stable output.
pub fn tiers(manifests: &[Manifest]) -> Vec<Vec<&Manifest>> {
    let mut grouped: Vec<Vec<&Manifest>> = vec![Vec::new(); TIERS.len()];
    for m in manifests {
        grouped[tier(&m.reference)].push(m);
    }
    for group in &mut grouped {
        group.sort_by(|a, b| a.reference.cmp(&b.reference));
    }
    grouped.retain(|g| !g.is_empty());
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{SourceFile, parse_file};

    #[test]
    fn accounts_and_config_go_before_workloads_and_custom_kinds_last() {
        let file = SourceFile {
            path: "all.yaml".into(),
            content: br#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
"#
            .to_vec(),
        };
        let manifests = parse_file(&file).unwrap();
        let kinds: Vec<Vec<&str>> = tiers(&manifests)
            .iter()
            .map(|t| t.iter().map(|m| m.reference.kind.as_str()).collect())
            .collect();
        assert_eq!(
            kinds,
            vec![
                vec!["ServiceAccount"],
                vec!["ConfigMap"],
                vec!["Deployment"],
                vec!["Widget"]
            ]
        );
    }
}

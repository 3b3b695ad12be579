//! Apply order: what others depend on goes first (accounts, RBAC, configuration, storage,
//! services), workloads next, then what points at workloads. Pruning runs in reverse.

use crate::kinds::LAST_TIER;
use crate::manifest::{Manifest, ObjectRef};

/// The tier of an object's kind (from `kinds`); kinds Berth does not know by name (custom
/// resources) come last.
pub fn tier(object: &ObjectRef) -> usize {
    crate::kinds::of(object).map_or(LAST_TIER, |k| k.tier)
}

/// Groups manifests into tiers, each sorted by namespace, kind and name for stable output.
pub fn tiers(manifests: &[Manifest]) -> Vec<Vec<&Manifest>> {
    let mut grouped: Vec<Vec<&Manifest>> = vec![Vec::new(); LAST_TIER + 1];
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

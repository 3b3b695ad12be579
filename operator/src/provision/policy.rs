//! A tenant's policy ConfigMap (`berth-policy-<tenant>` in the operator's namespace, readable
//! by its agent only): the platform's bundle, or the built-in one, and the platform's data for
//! that tenant (its own file if the platform has one, else the common data).

use std::collections::BTreeMap;

use berth_engine::api::{MANAGED_BY, TENANT_LABEL};
use berth_engine::policy::config_map::PolicyConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Policy ConfigMap of a tenant, in the operator's namespace.
pub fn policy_config_map_name(tenant: &str) -> String {
    format!("berth-policy-{tenant}")
}

/// The tenant's copy of `platform` (the platform policy ConfigMap, if published).
pub fn tenant_policy(
    tenant: &str,
    operator_namespace: &str,
    platform: Option<&ConfigMap>,
) -> ConfigMap {
    PolicyConfig::for_tenant(platform, tenant).to_config_map(ObjectMeta {
        name: Some(policy_config_map_name(tenant)),
        namespace: Some(operator_namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (TENANT_LABEL.to_owned(), tenant.to_owned()),
            (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
            (
                super::PROVISIONED_LABEL.0.to_owned(),
                super::PROVISIONED_LABEL.1.to_owned(),
            ),
        ])),
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::policy::config_map::{BUNDLE_KEY, DATA_KEY};
    use k8s_openapi::ByteString;

    fn platform(bundle: Option<&[u8]>, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            binary_data: bundle
                .map(|b| BTreeMap::from([(BUNDLE_KEY.to_owned(), ByteString(b.to_vec()))])),
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    fn parts(cm: &ConfigMap) -> (Vec<u8>, String) {
        let bundle = cm.binary_data.as_ref().unwrap()[BUNDLE_KEY].0.clone();
        (bundle, cm.data.as_ref().unwrap()[DATA_KEY].clone())
    }

    #[test]
    fn without_a_platform_policy_the_built_in_bundle_and_no_data() {
        let cm = tenant_policy("a", "berth-system", None);
        assert_eq!(cm.metadata.name.as_deref(), Some("berth-policy-a"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("berth-system"));
        assert_eq!(
            parts(&cm),
            (berth_engine::policy::DEFAULT_BUNDLE.to_vec(), "{}".into())
        );
    }

    #[test]
    fn a_tenants_own_data_replaces_the_common_data() {
        let p = platform(
            Some(b"platform bundle"),
            &[
                ("data.json", "{\"common\":1}"),
                ("tenant.a.json", "{\"own\":1}"),
            ],
        );
        assert_eq!(
            parts(&tenant_policy("a", "ns", Some(&p))),
            (b"platform bundle".to_vec(), "{\"own\":1}".into())
        );
        assert_eq!(
            parts(&tenant_policy("b", "ns", Some(&p))).1,
            "{\"common\":1}"
        );
        let no_bundle = platform(None, &[("data.json", "{}")]);
        assert_eq!(
            parts(&tenant_policy("b", "ns", Some(&no_bundle))).0,
            berth_engine::policy::DEFAULT_BUNDLE.to_vec()
        );
    }
}

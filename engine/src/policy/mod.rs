//! Policy step: every object of a revision is evaluated by a compiled OPA WebAssembly bundle
//! (`opa build -t wasm`) through `opa-wasm`. A missing or corrupt bundle is an error, so the
//! gate fails closed. How a policy reaches the agents is `config_map`.

pub mod config_map;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use opa_wasm::{Runtime, wasmtime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::guard::TenantContext;
use crate::manifest::{Manifest, ObjectRef, Origin};

/// The entrypoint every bundle must export: a set of violations for `input.object`.
pub const ENTRYPOINT: &str = "berth/violations";

/// Linear memory one evaluation may use; the module asks for no maximum of its own.
const MAX_MEMORY: usize = 64 * 1024 * 1024;
/// What a policy sees in place of each value of a Secret.
pub const REDACTED: &str = "[redacted]";

/// Instructions one evaluation may run (about 0.1 s); ordinary objects use well under 1%.
const FUEL: u64 = 1_500_000_000;

struct Limits(wasmtime::StoreLimits);

fn new_store(engine: &wasmtime::Engine) -> Result<wasmtime::Store<Limits>, String> {
    let limits = wasmtime::StoreLimitsBuilder::new()
        .memory_size(MAX_MEMORY)
        .instances(1)
        .memories(1)
        .build();
    let mut store = wasmtime::Store::new(engine, Limits(limits));
    store.limiter(|l| &mut l.0);
    store.set_fuel(FUEL).map_err(|e| format!("{e:#}"))?;
    Ok(store)
}

/// Why policy could not be evaluated (not a deny: a deny is a [`Violation`]).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy bundle {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("policy bundle {source_name} is not a valid OPA WebAssembly bundle: {reason}")]
    Corrupt { source_name: String, reason: String },
    #[error("policy bundle does not export the entrypoint {ENTRYPOINT}")]
    NoEntrypoint,
    #[error("evaluating policy for {object}: {reason}")]
    Evaluate { object: String, reason: String },
    #[error("policy for {object} returned an unexpected result: {reason}")]
    Result { object: String, reason: String },
}

/// Whether a violation blocks the revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; the object is applied.
    Warn,
    /// The whole revision is refused.
    Deny,
}

/// One policy finding as the bundle returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub policy: String,
    pub rule: String,
    pub severity: Severity,
    pub message: String,
}

/// A finding about an object of the revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub object: ObjectRef,
    pub origin: Origin,
    #[serde(flatten)]
    pub finding: Finding,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): [{}/{}] {}",
            self.object, self.origin, self.finding.policy, self.finding.rule, self.finding.message
        )
    }
}

/// The policy profile of a tenant, `data.params.profile`: what the default library enforces
/// and what it only warns about, and the Pod Security level its namespaces enforce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Enforce what the Pod Security `baseline` standard forbids, warn about `restricted`.
    #[default]
    Baseline,
    /// Enforce `restricted` and the rest of the library.
    Restricted,
}

impl Profile {
    /// The Pod Security Standard of the same name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }

    /// The profile the policy data selects. Anything but `"restricted"` is baseline here: the
    /// library itself refuses every object while `params.profile` is invalid, so a typo cannot
    /// relax what is enforced.
    pub fn from_data(data: &Value) -> Self {
        match data.pointer("/params/profile").and_then(Value::as_str) {
            Some("restricted") => Self::Restricted,
            _ => Self::Baseline,
        }
    }
}

/// The default library (`policies/berth`), compiled by `policies/build.sh` and committed.
pub const DEFAULT_BUNDLE: &[u8] = include_bytes!("../../../policies/bundle.tar.gz");

/// A compiled policy module: compiled once per bundle, shared by every tenant evaluated with it
/// (compiling is the expensive part; each evaluation gets a fresh store).
pub struct CompiledPolicy {
    engine: wasmtime::Engine,
    module: wasmtime::Module,
    /// Identifies the bundle in reports: a digest of the WebAssembly module.
    pub version: String,
}

impl CompiledPolicy {
    /// Compiles `bundle.tar.gz` as written by `opa build -t wasm`; `source_name` names it in
    /// errors.
    pub async fn compile(source_name: &str, bundle: &[u8]) -> Result<Self, PolicyError> {
        let corrupt = |reason: String| PolicyError::Corrupt {
            source_name: source_name.to_owned(),
            reason,
        };
        let wasm = opa_wasm::load_bundle(tokio::io::BufReader::new(bundle))
            .await
            .map_err(|e| corrupt(format!("{e:#}")))?;
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = wasmtime::Engine::new(&config).map_err(|e| corrupt(format!("{e:#}")))?;
        let module =
            wasmtime::Module::new(&engine, &wasm).map_err(|e| corrupt(format!("{e:#}")))?;
        let compiled = Self {
            engine,
            module,
            version: digest(&wasm),
        };
        // Instantiating once proves the module is an OPA policy with our entrypoint.
        let mut store = new_store(&compiled.engine).map_err(corrupt)?;
        let runtime = Runtime::new(&mut store, &compiled.module)
            .await
            .map_err(|e| corrupt(format!("{e:#}")))?;
        if !runtime.entrypoints().contains(ENTRYPOINT) {
            return Err(PolicyError::NoEntrypoint);
        }
        Ok(compiled)
    }
}

/// A compiled policy with the parameters the platform sets for one tenant, ready to evaluate.
pub struct PolicyBundle {
    compiled: Arc<CompiledPolicy>,
    /// Parameters the platform sets for the tenant (`data` in Rego).
    data: Value,
    /// Identifies the bundle in reports: a digest of the WebAssembly module.
    pub version: String,
}

impl PolicyBundle {
    /// Loads `bundle.tar.gz` as written by `opa build -t wasm`.
    pub async fn from_file(path: &Path, data: Value) -> Result<Self, PolicyError> {
        let bytes = tokio::fs::read(path).await.map_err(|e| PolicyError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_bytes(&path.display().to_string(), &bytes, data).await
    }

    /// Loads a bundle from memory; `source_name` names it in errors.
    pub async fn from_bytes(
        source_name: &str,
        bundle: &[u8],
        data: Value,
    ) -> Result<Self, PolicyError> {
        let compiled = CompiledPolicy::compile(source_name, bundle).await?;
        Ok(Self::new(Arc::new(compiled), data))
    }

    /// An already compiled policy with a tenant's data.
    pub fn new(compiled: Arc<CompiledPolicy>, data: Value) -> Self {
        Self {
            version: compiled.version.clone(),
            compiled,
            data,
        }
    }

    /// Evaluates every manifest; returns all findings, denies and warnings alike.
    pub async fn evaluate(
        &self,
        manifests: &[Manifest],
        tenant: &TenantContext,
        revision: &str,
    ) -> Result<Vec<Violation>, PolicyError> {
        let Some(first) = manifests.first() else {
            return Ok(Vec::new());
        };
        let instance_error = |reason: String| PolicyError::Evaluate {
            object: first.reference.to_string(),
            reason,
        };
        // One instance per revision: instantiating costs several times an evaluation, and
        // opa-wasm rewinds the heap between evaluations. Fuel is refilled for each object; the
        // memory limit holds for the whole revision.
        let mut store = new_store(&self.compiled.engine).map_err(instance_error)?;
        let runtime = Runtime::new(&mut store, &self.compiled.module)
            .await
            .map_err(|e| instance_error(format!("{e:#}")))?;
        let policy = runtime
            .with_data(&mut store, &self.data)
            .await
            .map_err(|e| instance_error(format!("{e:#}")))?;
        let mut violations = Vec::new();
        for manifest in manifests {
            let failed = |reason: String| PolicyError::Evaluate {
                object: manifest.reference.to_string(),
                reason,
            };
            let input = input(manifest, tenant, revision);
            store.set_fuel(FUEL).map_err(|e| failed(format!("{e:#}")))?;
            let result: Value = policy
                .evaluate(&mut store, ENTRYPOINT, &input)
                .await
                .map_err(|e| failed(format!("{e:#}")))?;
            let found = findings(result).map_err(|reason| PolicyError::Result {
                object: manifest.reference.to_string(),
                reason,
            })?;
            violations.extend(found.into_iter().map(|finding| Violation {
                object: manifest.reference.clone(),
                origin: manifest.origin.clone(),
                finding,
            }));
        }
        violations.sort_by(|a, b| (&a.object, &a.finding.rule).cmp(&(&b.object, &b.finding.rule)));
        Ok(violations)
    }
}

/// What a policy sees of one object: the object (a Secret's values redacted, its keys kept),
/// whether it was committed to Git encrypted (`null` for admission), the tenant and the
/// revision.
pub fn input(manifest: &Manifest, tenant: &TenantContext, revision: &str) -> Value {
    let mut object = manifest.object.clone();
    if manifest.reference.kind == "Secret" && manifest.reference.group().is_empty() {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(values)) = object.get_mut(field) {
                values.values_mut().for_each(|v| *v = Value::from(REDACTED));
            }
        }
    }
    json!({
        "object": object,
        "encrypted": manifest.encrypted,
        "tenant": tenant.policy_input(),
        "revision": revision,
    })
}

/// Extracts the findings from OPA's result set, `[{"result": [finding, …]}]`. An undefined
/// result (empty set) means no findings.
pub fn findings(result_set: Value) -> Result<Vec<Finding>, String> {
    let Value::Array(results) = result_set else {
        return Err("the result set is not an array".into());
    };
    let mut findings = Vec::new();
    for entry in results {
        let Some(result) = entry.get("result") else {
            continue;
        };
        let list: Vec<Finding> =
            serde_json::from_value(result.clone()).map_err(|e| format!("violations: {e}"))?;
        findings.extend(list);
    }
    Ok(findings)
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

//! The unit every pipeline step passes along: one Kubernetes object with where it came from.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an object was declared: a file of the revision and the document's index in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Origin {
    pub file: String,
    /// 1-based index of the YAML document within the file.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file, self.document)
    }
}

/// Identifies an object in the cluster. The API version is kept for display and apply, but two
/// versions of one group/kind/namespace/name are the same object.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The API group ("" for the core group).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The identity used for duplicates and inventory: group, kind, namespace, name.
    pub fn identity(&self) -> (&str, &str, Option<&str>, &str) {
        (
            self.group(),
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// A rendered object of a revision.
#[derive(Clone, PartialEq)]
pub struct Manifest {
    pub origin: Origin,
    pub reference: ObjectRef,
    /// The full object as declared (after defaulting its namespace, see guard rails).
    pub object: Value,
    /// Whether the object's values were committed to Git encrypted with SOPS (a Secret, its
    /// values now plaintext); `None` for an object that does not come from Git (admission).
    pub encrypted: Option<bool>,
}

/// Without the object: a Secret's values must not reach a log through `{:?}`.
impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("origin", &self.origin)
            .field("reference", &self.reference)
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// Sets the object's namespace, in both the reference and the body.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.reference.namespace = Some(namespace.to_owned());
        if let Some(meta) = self
            .object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
    }
}

//! Parsing one manifest file (multi-document YAML, or JSON) into validated objects.

use serde_json::Value;

use super::{RenderError, SourceFile};
use crate::manifest::{Manifest, ObjectRef, Origin};

/// Parses every document of `file`; empty documents are skipped and `kind: List` is expanded.
/// The YAML parser's default budget bounds alias expansion, nesting and size (YAML bombs).
pub fn parse_file(file: &SourceFile) -> Result<Vec<Manifest>, RenderError> {
    let text = std::str::from_utf8(&file.content).map_err(|_| RenderError::NotUtf8 {
        file: file.path.clone(),
    })?;
    let documents: Vec<Value> = if file.path.to_ascii_lowercase().ends_with(".json") {
        serde_json::from_str(text)
            .map(|v| vec![v])
            .map_err(|e| malformed(&file.path, 1, e.to_string()))?
    } else {
        serde_saphyr::from_multiple_with_options(text, yaml_options())
            .map_err(|e| malformed(&file.path, 1, first_line(&e.to_string())))?
    };
    let mut out = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        let origin = Origin {
            file: file.path.clone(),
            document: index + 1,
        };
        match document {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind") == Some(&Value::from("List")) => {
                let items = match map.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => return Err(missing(origin, "items")),
                };
                for item in items {
                    out.push(manifest(origin.clone(), item)?);
                }
            }
            other => out.push(manifest(origin, other)?),
        }
    }
    Ok(out)
}

/// The parser's default budget (alias expansion, nesting, node and byte counts), except that
/// one file may hold more than its default 1,024 documents: the object limit of the revision
/// is what bounds those.
pub(super) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 100_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Validates one document as a Kubernetes object.
pub(super) fn manifest(origin: Origin, object: Value) -> Result<Manifest, RenderError> {
    if !object.is_object() {
        return Err(RenderError::Malformed {
            origin,
            message: "a document must be a mapping (an object with apiVersion, kind, metadata)"
                .into(),
        });
    }
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let api_version = text("/apiVersion").ok_or_else(|| missing(origin.clone(), "apiVersion"))?;
    let kind = text("/kind").ok_or_else(|| missing(origin.clone(), "kind"))?;
    let name = text("/metadata/name").ok_or_else(|| missing(origin.clone(), "metadata.name"))?;
    let reference = ObjectRef {
        api_version,
        kind,
        namespace: text("/metadata/namespace"),
        name,
    };
    Ok(Manifest {
        origin,
        reference,
        object,
        encrypted: Some(false),
    })
}

fn missing(origin: Origin, field: &'static str) -> RenderError {
    RenderError::MissingField { origin, field }
}

fn malformed(file: &str, document: usize, message: String) -> RenderError {
    RenderError::Malformed {
        origin: Origin {
            file: file.to_owned(),
            document,
        },
        message,
    }
}

// Parser messages can quote large snippets of the input; the first line says what is wrong.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}

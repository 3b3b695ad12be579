//! Strict parse of kustomization files into a typed allow-list, so that kustomize only ever
//! reads a kustomization Berth has understood completely.
//!
//! kustomize converts a kustomization from YAML to JSON and decodes it with Go's
//! `encoding/json`, which matches field names without regard to case (`Resources:` and
//! `RESOURCES:` both mean `resources`; Unicode case folding included) and lets a later key
//! silently replace an earlier one. YAML adds anchors, aliases and merge keys (`<<`), which can
//! make a value appear where no key names it. So this parse:
//!
//! - refuses anchors, aliases, merge keys, tags, directives, complex keys, non-ASCII keys,
//!   more than one document, and duplicate keys, field names compared case-insensitively;
//! - decodes into types mirroring kustomize's own (`api/types` of kustomize 5.8), refusing
//!   every field it does not know, and the fields that run code or fetch charts;
//! - checks every value kustomize loads something from (resources, bases, components, crds,
//!   configurations, patch and replacement paths, `openapi.path`, generator `files`, `envs` and
//!   `env`) is a relative path to a file or directory of the revision, and no URL or remote
//!   reference (`scheme://`, `git::`, `github.com/…`, `user@host:path`, `host:path`, `//`,
//!   `?ref=`); other values are refused if they look like a URL, except the ones that are data
//!   kustomize copies into objects and never dereferences (generator literals, labels,
//!   annotations, image names, inline patches);
//! - and hands kustomize the decoded kustomization re-encoded as JSON instead of the tenant's
//!   text, so that no difference between two YAML parsers can smuggle anything past the checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path};

use granit_parser::{Event, Options, Parser, ScalarStyle};
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{RenderError, SourceFile};

/// File names kustomize recognises as a kustomization.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Largest kustomization file accepted; real ones are a few kilobytes.
const MAX_KUSTOMIZATION_BYTES: usize = 1024 * 1024;

/// Deepest YAML nesting accepted; the deepest kustomization field is about eight levels down.
const MAX_DEPTH: usize = 32;

/// Secret values shorter than this are not looked for in messages: they would match ordinary
/// words, and are no secret anyway.
const MIN_SECRET_LEN: usize = 3;

/// Every kustomization of a revision, checked.
#[derive(Debug, Default)]
pub(super) struct Checked {
    /// Path of each kustomization file and the JSON kustomize gets in its place.
    pub rewritten: BTreeMap<String, Vec<u8>>,
    /// Values of `secretGenerator` literals, files and env files, to keep out of messages.
    pub secrets: Vec<String>,
}

pub(super) fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    KUSTOMIZATION_FILES.contains(&name)
}

/// Checks every kustomization file of the revision.
pub(super) fn check_all(files: &[SourceFile]) -> Result<Checked, RenderError> {
    let revision = Revision::new(files);
    let mut checked = Checked::default();
    for file in files.iter().filter(|f| is_kustomization(&f.path)) {
        let (json, secrets) = check(file, &revision)?;
        checked.rewritten.insert(file.path.clone(), json);
        checked.secrets.extend(secrets);
    }
    checked.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    checked.secrets.dedup();
    Ok(checked)
}

/// Checks one kustomization file; returns the JSON kustomize gets and its secret values.
pub(super) fn check(
    file: &SourceFile,
    revision: &Revision,
) -> Result<(Vec<u8>, Vec<String>), RenderError> {
    let refuse = |reason: String| RenderError::Kustomization {
        file: file.path.clone(),
        reason,
    };
    if file.content.len() > MAX_KUSTOMIZATION_BYTES {
        return Err(refuse(format!(
            "larger than {} KiB; a kustomization holds references, not data",
            MAX_KUSTOMIZATION_BYTES / 1024
        )));
    }
    let text = std::str::from_utf8(&file.content).map_err(|_| RenderError::NotUtf8 {
        file: file.path.clone(),
    })?;
    let node = parse_yaml(text).map_err(refuse)?;
    let kustomization = match &node {
        Some(node) => Kustomization::deserialize(NodeDe(node)).map_err(|e| {
            if e.path.is_empty() {
                refuse(e.message)
            } else {
                RenderError::KustomizationField {
                    file: file.path.clone(),
                    field: e.path.trim_start_matches('.').to_owned(),
                    reason: e.message,
                }
            }
        })?,
        None => Kustomization::default(),
    };
    let mut value = serde_json::to_value(&kustomization)
        .map_err(|e| refuse(format!("cannot re-encode the kustomization: {e}")))?;
    strip_nulls(&mut value);
    let dir = Path::new(&file.path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let context = Context {
        dir: &dir,
        revision,
    };
    context
        .check_value(&value, &mut Vec::new())
        .map_err(|(field, reason)| RenderError::KustomizationField {
            file: file.path.clone(),
            field,
            reason,
        })?;
    let secrets = kustomization.secret_values(&dir, revision);
    let json = serde_json::to_vec_pretty(&value)
        .map_err(|e| refuse(format!("cannot re-encode the kustomization: {e}")))?;
    Ok((json, secrets))
}

// ---------------------------------------------------------------------------------------------
// YAML, strictly

/// A YAML node without anchors, aliases, tags or merge keys.
#[derive(Debug, PartialEq)]
enum Node {
    Scalar { text: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

enum Frame {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(String, Node)>,
        key: Option<String>,
    },
}

/// Parses one YAML document; `None` for an empty file.
fn parse_yaml(text: &str) -> Result<Option<Node>, String> {
    let mut options = Options::default();
    options.disallow_directives = true;
    options.emit_comments = false;
    let parser = Parser::new_from_str_with_options(text, options);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    let mut documents = 0;
    for event in parser {
        let (event, span) = event.map_err(|e| format!("malformed YAML: {e}"))?;
        let at = |what: &str| format!("line {}: {what}", span.start.line());
        let mut finished = None;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(at("more than one YAML document"));
                }
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                return Err(at("YAML aliases (`*name`) are not allowed"));
            }
            Event::Scalar(text, style, anchor, tag) => {
                plain_node(anchor, tag.is_some()).map_err(at)?;
                finished = Some(Node::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                });
            }
            Event::SequenceStart(_, anchor, tag) => {
                plain_node(anchor, tag.is_some()).map_err(at)?;
                stack.push(Frame::Seq(Vec::new()));
            }
            Event::MappingStart(_, anchor, tag) => {
                plain_node(anchor, tag.is_some()).map_err(at)?;
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                finished = match stack.pop() {
                    Some(Frame::Seq(items)) => Some(Node::Seq(items)),
                    Some(Frame::Map { entries, .. }) => Some(Node::Map(entries)),
                    None => return Err(at("unbalanced YAML")),
                };
            }
            _ => return Err(at("unsupported YAML construct")),
        }
        if stack.len() > MAX_DEPTH {
            return Err(at("nested too deeply"));
        }
        let Some(node) = finished else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items)) => items.push(node),
            Some(Frame::Map { entries, key }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    let Node::Scalar { text, plain } = node else {
                        return Err(at("a mapping key must be a plain string"));
                    };
                    if plain && text == "<<" {
                        return Err(at("YAML merge keys (`<<`) are not allowed"));
                    }
                    if !text.is_ascii() {
                        return Err(at(&format!(
                            "key `{text}` is not ASCII (kustomize would fold its case)"
                        )));
                    }
                    if entries.iter().any(|(k, _)| *k == text) {
                        return Err(at(&format!("duplicate key `{text}`")));
                    }
                    *key = Some(text);
                }
            },
        }
    }
    Ok(root)
}

fn plain_node(anchor: usize, tagged: bool) -> Result<(), &'static str> {
    if anchor != 0 {
        return Err("YAML anchors (`&name`) are not allowed");
    }
    if tagged {
        return Err("YAML tags (`!name`) are not allowed");
    }
    Ok(())
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

// ---------------------------------------------------------------------------------------------
// Decoding a node the way kustomize does, minus its leniency

#[derive(Debug)]
struct DeError {
    /// `.field[index]…`, built from the innermost error outwards.
    path: String,
    message: String,
}

impl DeError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            message: message.into(),
        }
    }

    fn within(mut self, segment: &str) -> Self {
        self.path.insert_str(0, segment);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::new(message.to_string())
    }
}

#[derive(Clone, Copy)]
struct NodeDe<'a>(&'a Node);

impl<'a> NodeDe<'a> {
    fn kind(&self) -> &'static str {
        match self.0 {
            Node::Scalar { .. } => "a scalar",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    fn scalar(&self, expected: &str) -> Result<(&'a str, bool), DeError> {
        match self.0 {
            Node::Scalar { text, plain } => Ok((text, *plain)),
            _ => Err(DeError::new(format!(
                "expected {expected}, found {}",
                self.kind()
            ))),
        }
    }
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Scalar { text, .. } => visitor.visit_borrowed_str(text),
            Node::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
            }),
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar("true or false")? {
            ("true" | "True" | "TRUE", true) => visitor.visit_bool(true),
            ("false" | "False" | "FALSE", true) => visitor.visit_bool(false),
            (other, _) => Err(DeError::new(format!(
                "expected true or false, found `{other}`"
            ))),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar("an integer")? {
            (text, true) => match text.parse::<i64>() {
                Ok(n) => visitor.visit_i64(n),
                Err(_) => Err(DeError::new(format!("expected an integer, found `{text}`"))),
            },
            (text, false) => Err(DeError::new(format!(
                "expected an integer, found the string `{text}`"
            ))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar("a string")? {
            (text, true) if is_null(text) => Err(DeError::new("expected a string, found null")),
            (text, _) => visitor.visit_borrowed_str(text),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Scalar { text, plain: true } if is_null(text) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
            }),
            _ => Err(DeError::new(format!(
                "expected a list, found {}",
                self.kind()
            ))),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
            }),
            _ => Err(DeError::new(format!(
                "expected a mapping, found {}",
                self.kind()
            ))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Node::Map(entries) => visitor.visit_map(Fields {
                entries: entries.iter(),
                fields,
                seen: Vec::new(),
                value: None,
            }),
            _ => Err(DeError::new(format!(
                "expected a mapping, found {}",
                self.kind()
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 u8 u16 u32 u64 i128 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}

struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((i, node)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDe(node))
            .map(Some)
            .map_err(|e| e.within(&format!("[{i}]")))
    }
}

/// A mapping whose keys are data (label names and the like): matched exactly, as kustomize does.
struct Entries<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<(&'a str, &'a Node)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, node) = self
            .value
            .take()
            .ok_or_else(|| DeError::new("value without a key"))?;
        seed.deserialize(NodeDe(node))
            .map_err(|e| e.within(&format!(".{key}")))
    }
}

/// A mapping whose keys are field names: matched without regard to case, as Go's
/// `encoding/json` does, but two spellings of one field are refused.
struct Fields<'a> {
    entries: std::slice::Iter<'a, (String, Node)>,
    fields: &'static [&'static str],
    seen: Vec<(&'static str, &'a str)>,
    value: Option<(&'static str, &'a Node)>,
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let Some(field) = self
            .fields
            .iter()
            .find(|f| f.eq_ignore_ascii_case(key))
            .copied()
        else {
            return Err(DeError::new(format!("unknown field `{key}`")).within(&format!(".{key}")));
        };
        if let Some((_, first)) = self.seen.iter().find(|(f, _)| *f == field) {
            return Err(DeError::new(format!(
                "`{key}` repeats `{first}` (kustomize reads field names without regard to case)"
            ))
            .within(&format!(".{field}")));
        }
        self.seen.push((field, key));
        self.value = Some((field, value));
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (field, node) = self
            .value
            .take()
            .ok_or_else(|| DeError::new("value without a key"))?;
        seed.deserialize(NodeDe(node))
            .map_err(|e| e.within(&format!(".{field}")))
    }
}

// ---------------------------------------------------------------------------------------------
// The allow-list: kustomize's types (api/types, kustomize 5.8), every field optional

type Labels = BTreeMap<String, String>;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<ObjectMeta>,
    openapi: Option<BTreeMap<String, String>>,
    name_prefix: Option<String>,
    name_suffix: Option<String>,
    namespace: Option<String>,
    common_labels: Option<Labels>,
    labels: Option<Vec<Label>>,
    common_annotations: Option<Labels>,
    patches_strategic_merge: Option<Vec<String>>,
    patches_json6902: Option<Vec<Patch>>,
    patches: Option<Vec<Patch>>,
    images: Option<Vec<Image>>,
    image_tags: Option<Vec<Image>>,
    replacements: Option<Vec<Replacement>>,
    replicas: Option<Vec<Replica>>,
    vars: Option<Vec<Var>>,
    sort_options: Option<SortOptions>,
    resources: Option<Vec<String>>,
    components: Option<Vec<String>>,
    crds: Option<Vec<String>>,
    bases: Option<Vec<String>>,
    config_map_generator: Option<Vec<Generator>>,
    secret_generator: Option<Vec<Generator>>,
    generator_options: Option<GeneratorOptions>,
    configurations: Option<Vec<String>>,
    build_metadata: Option<Vec<String>>,
    helm_globals: Option<Forbidden>,
    helm_charts: Option<Forbidden>,
    helm_chart_inflation_generator: Option<Forbidden>,
    generators: Option<Forbidden>,
    transformers: Option<Forbidden>,
    validators: Option<Forbidden>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<Labels>,
    annotations: Option<Labels>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Label {
    pairs: Option<Labels>,
    include_selectors: Option<bool>,
    include_templates: Option<bool>,
    fields: Option<Vec<FieldSpec>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldSpec {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    path: Option<String>,
    create: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Patch {
    path: Option<String>,
    patch: Option<String>,
    target: Option<Selector>,
    options: Option<PatchOptions>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchOptions {
    allow_name_change: Option<bool>,
    allow_kind_change: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    annotation_selector: Option<String>,
    label_selector: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Image {
    name: Option<String>,
    new_name: Option<String>,
    tag_suffix: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Replacement {
    path: Option<String>,
    source: Option<SourceSelector>,
    targets: Option<Vec<TargetSelector>>,
    source_value: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceSelector {
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    field_path: Option<String>,
    options: Option<FieldOptions>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetSelector {
    select: Option<Selector>,
    reject: Option<Vec<Selector>>,
    field_paths: Option<Vec<String>>,
    options: Option<FieldOptions>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldOptions {
    delimiter: Option<String>,
    index: Option<i64>,
    encoding: Option<String>,
    create: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Replica {
    name: Option<String>,
    count: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Var {
    name: Option<String>,
    objref: Option<VarTarget>,
    fieldref: Option<FieldSelector>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct VarTarget {
    api_version: Option<String>,
    group: Option<String>,
    version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldSelector {
    field_path: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SortOptions {
    order: Option<String>,
    legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacySortOptions {
    order_first: Option<Vec<String>>,
    order_last: Option<Vec<String>>,
}

/// `configMapGenerator` and `secretGenerator` entries (`type` only for Secrets).
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Generator {
    namespace: Option<String>,
    name: Option<String>,
    behavior: Option<String>,
    literals: Option<Vec<String>>,
    files: Option<Vec<String>>,
    envs: Option<Vec<String>>,
    env: Option<String>,
    options: Option<GeneratorOptions>,
    #[serde(rename = "type")]
    type_: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct GeneratorOptions {
    labels: Option<Labels>,
    annotations: Option<Labels>,
    disable_name_suffix_hash: Option<bool>,
    immutable: Option<bool>,
}

/// A field Berth does not allow at all: Helm charts and plugins run code or fetch charts.
#[derive(Debug, Serialize)]
struct Forbidden;

impl<'de> Deserialize<'de> for Forbidden {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom(
            "not allowed (it runs code or fetches charts)",
        ))
    }
}

impl Kustomization {
    /// Values a failing kustomize could quote from `secretGenerator` sources.
    fn secret_values(&self, dir: &str, revision: &Revision) -> Vec<String> {
        let mut values = Vec::new();
        let mut add = |value: &str| {
            let value = value.trim();
            if value.len() >= MIN_SECRET_LEN {
                values.push(value.to_owned());
            }
        };
        for generator in self.secret_generator.iter().flatten() {
            for literal in generator.literals.iter().flatten() {
                add(literal);
                if let Some((_, value)) = literal.split_once('=') {
                    add(value);
                }
            }
            let sources = generator
                .files
                .iter()
                .flatten()
                .map(|f| f.split_once('=').map_or(f.as_str(), |(_, p)| p))
                .chain(generator.envs.iter().flatten().map(String::as_str))
                .chain(generator.env.as_deref());
            for source in sources {
                let Some(content) = revision.file(&join(dir, source)) else {
                    continue;
                };
                let text = String::from_utf8_lossy(content);
                add(&text);
                for line in text.lines() {
                    add(line);
                    if let Some((_, value)) = line.split_once('=') {
                        add(value);
                    }
                }
            }
        }
        values
    }
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// What each value may be

/// The files and directories of a revision.
pub(super) struct Revision<'a> {
    files: BTreeMap<&'a str, &'a [u8]>,
    dirs: BTreeSet<String>,
}

impl<'a> Revision<'a> {
    pub(super) fn new(files: &'a [SourceFile]) -> Self {
        let mut dirs = BTreeSet::new();
        for file in files {
            let mut path = file.path.as_str();
            while let Some((parent, _)) = path.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                path = parent;
            }
        }
        Self {
            files: files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_slice()))
                .collect(),
            dirs,
        }
    }

    fn file(&self, path: &str) -> Option<&'a [u8]> {
        self.files.get(path).copied()
    }

    fn is_dir(&self, path: &str) -> bool {
        path.is_empty() || self.dirs.contains(path)
    }
}

/// How a value is checked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    /// A path kustomize loads a file or a kustomization directory from.
    FileOrDir,
    /// A path kustomize loads a file from.
    File,
    /// `key=path` or `path` of a generator file.
    GeneratorFile,
    /// A `patchesStrategicMerge` entry: an inline patch, or a path.
    PatchOrFile,
    /// Data copied into objects, never dereferenced.
    Data,
    /// Anything else: names, kinds, field paths, options.
    Plain,
}

/// Which class the value at `path` (field names, `*` for list indices) belongs to.
fn classify(path: &[&str]) -> Class {
    use Class::*;
    let generator = |name: &str| name == "configMapGenerator" || name == "secretGenerator";
    match path {
        ["resources" | "bases" | "components", "*"] => FileOrDir,
        ["crds" | "configurations", "*"] => File,
        ["openapi", "path"] => File,
        ["patches" | "patchesJson6902" | "replacements", "*", "path"] => File,
        ["patchesStrategicMerge", "*"] => PatchOrFile,
        [g, "*", "files", "*"] if generator(g) => GeneratorFile,
        [g, "*", "envs", "*"] | [g, "*", "env"] if generator(g) => File,
        [g, "*", "literals", "*"] if generator(g) => Data,
        ["patches" | "patchesJson6902", "*", "patch"] => Data,
        ["replacements", "*", "sourceValue"] => Data,
        ["images" | "imageTags", ..] => Data,
        ["commonLabels" | "commonAnnotations", _] => Data,
        ["labels", "*", "pairs", _] => Data,
        [.., "labels" | "annotations", _] => Data,
        [.., "labelSelector" | "annotationSelector"] => Data,
        _ => Plain,
    }
}

struct Context<'a> {
    /// The kustomization's directory, relative to the repository root.
    dir: &'a str,
    revision: &'a Revision<'a>,
}

type Refusal = (String, String);

impl Context<'_> {
    fn check_value(&self, value: &Value, path: &mut Vec<String>) -> Result<(), Refusal> {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    path.push(key.clone());
                    self.check_value(value, path)?;
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    self.check_value(value, path)?;
                    path.pop();
                }
            }
            Value::String(text) => {
                let pattern: Vec<&str> = path
                    .iter()
                    .map(|s| if s.starts_with('[') { "*" } else { s.as_str() })
                    .collect();
                self.check_string(text, classify(&pattern))
                    .map_err(|reason| (display_path(path), reason))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn check_string(&self, text: &str, class: Class) -> Result<(), String> {
        match class {
            Class::Data => Ok(()),
            Class::Plain => match remote_form(text) {
                Some(form) => Err(format!("`{text}` looks like {form}; it is not allowed")),
                None => Ok(()),
            },
            Class::FileOrDir => self.location(text, true),
            Class::File => self.location(text, false),
            Class::GeneratorFile => {
                let path = match text.split_once('=') {
                    Some((key, path)) => {
                        self.check_string(key, Class::Plain)?;
                        path
                    }
                    None => text,
                };
                self.location(path, false)
            }
            Class::PatchOrFile => {
                if self.revision.file(&join(self.dir, text)).is_some() {
                    self.location(text, false)
                } else if text.contains('\n') || text.trim_start().starts_with('{') {
                    // An inline patch: kustomize parses it as YAML, and loads nothing.
                    Ok(())
                } else {
                    self.location(text, false)
                }
            }
        }
    }

    /// A path to load from: relative, inside the repository, no remote reference, present.
    fn location(&self, text: &str, dir_allowed: bool) -> Result<(), String> {
        if text.is_empty() {
            return Err("an empty path".into());
        }
        if text.chars().any(char::is_control) {
            return Err("a path with control characters".into());
        }
        if let Some(form) = remote_form(text).or_else(|| remote_path_form(text)) {
            return Err(format!(
                "remote reference `{text}` ({form}) is not allowed: everything must come from \
                 the repository"
            ));
        }
        if escapes_root(Path::new(self.dir), text) {
            return Err(format!("`{text}` points outside the repository"));
        }
        let target = join(self.dir, text);
        let found =
            self.revision.file(&target).is_some() || (dir_allowed && self.revision.is_dir(&target));
        if !found {
            return Err(format!(
                "`{text}` is not a {} of the revision",
                if dir_allowed {
                    "file or directory"
                } else {
                    "file"
                }
            ));
        }
        Ok(())
    }
}

/// `field[0].sub` from the segments of a value's path.
fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !segment.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

/// Whether `text` reads as a URL or remote reference anywhere it appears.
fn remote_form(text: &str) -> Option<&'static str> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.contains("://") {
        return Some("a URL");
    }
    if lower.starts_with("git::") {
        return Some("a git reference (`git::`)");
    }
    if lower.starts_with("//") {
        return Some("a network path (`//host`)");
    }
    if ["?ref=", "?version=", "?submodules=", "?timeout=", "&ref="]
        .iter()
        .any(|q| lower.contains(q))
    {
        return Some("a remote reference with a `?ref=` query");
    }
    if lower.starts_with("github.com/") || lower.starts_with("github.com:") {
        return Some("a GitHub repository");
    }
    if is_scp_like(&lower) {
        return Some("an scp-like `host:path` reference");
    }
    None
}

/// More that a *path* may not hold: any `:`, `@` in its first segment, `//`, `?`, `\`.
fn remote_path_form(text: &str) -> Option<&'static str> {
    let first = text.split('/').next().unwrap_or_default();
    if text.contains(':') {
        return Some("a `host:path` or scheme");
    }
    if first.contains('@') {
        return Some("a `user@host` reference");
    }
    if text.contains("//") {
        return Some("a `repository//directory` reference");
    }
    if text.contains('?') {
        return Some("a query");
    }
    if text.contains('\\') {
        return Some("a backslash");
    }
    None
}

/// `user@host:path`, `host:org/repo`, `host.domain:path`: what git and ssh read as a remote.
fn is_scp_like(text: &str) -> bool {
    let Some((host, rest)) = text.split_once(':') else {
        return false;
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host_like = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']'));
    host_like && !rest.starts_with(' ') && (rest.contains('/') || text.contains('@'))
}

fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Whether `dir/entry`, normalised lexically, leaves the repository.
pub(super) fn escapes_root(dir: &Path, entry: &str) -> bool {
    let path = Path::new(entry);
    if path.is_absolute() {
        return true;
    }
    let mut depth: i64 = 0;
    for component in dir.join(path).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => depth -= 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;

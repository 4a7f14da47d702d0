//! Spec conformance: every request the marketplace files build, captured as they build it (the
//! real [`Step`](super::Step) chains driven with answers), checked against the marketplaces'
//! published specifications in `push/fixtures/specs/` (see SOURCES.md there); and every answer
//! shape those specifications define, checked against them first, then read by the marketplace
//! files.
//!
//! - OpenAPI / Swagger ([`OpenApi`]): the request's method and path match an operation whose
//!   `operationId` is the request's name; every required path, query and header parameter is
//!   sent, every query parameter sent is declared and its value fits its schema; the JSON body
//!   validates against the operation's body schema (JSON Schema, `jsonschema`).
//! - JSON Schema documents (the Amazon listings feed and its processing report): validated
//!   as they are, with the `$ref`s between them resolved locally.
//! - GraphQL (Shopify): each document is validated against the Admin API schema and its
//!   variables coerced against the operation (`apollo-compiler`), as Shopify's server does.

mod amazon;
mod checks;
mod ebay;
mod shopify;
mod walmart;

use std::path::PathBuf;

use jsonschema::{Draft, Validator};
use reqwest::Method;
use serde_json::{json, Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::push::api::Request;

/// The path of spec file `name`.
fn spec_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/push/fixtures/specs")
        .join(name)
}

/// Spec file `name` as text.
pub(super) fn spec_text(name: &str) -> String {
    std::fs::read_to_string(spec_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A JSON or YAML spec file, as JSON.
pub(super) fn spec(name: &str) -> Value {
    let text = spec_text(name);
    if name.ends_with(".json") {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    yaml_to_json(&docs[0])
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(r) => r.parse::<f64>().map_or(Value::Null, |f| json!(f)),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => {
            let mut out = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => format!("{other:?}"),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}

/// A validator of the schema at `pointer` inside `document` (its `#/…` references resolved
/// within `document`), as JSON Schema `draft`.
pub(super) fn validator_at(document: &Value, pointer: &str, draft: Draft) -> Validator {
    let mut root = document
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no schema at {pointer}"))
        .clone();
    // The schema's `#/definitions/…` and `#/components/…` references resolve against the
    // document: put what they reach beside it.
    if let (false, Some(object)) = (pointer.is_empty(), root.as_object_mut()) {
        for key in ["definitions", "components"] {
            if let Some(v) = document.get(key) {
                object.insert(key.into(), v.clone());
            }
        }
    }
    jsonschema::options()
        .with_draft(draft)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer}: {e}"))
}

/// Asserts `instance` is valid, listing every error.
pub(super) fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not conform:\n{}\n{instance:#}",
        errors.join("\n")
    );
}

/// The value at a `#/…` reference of `document`.
fn resolve<'v>(document: &'v Value, value: &'v Value) -> &'v Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => document
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("no {r}")),
        None => value,
    }
}

/// One operation of an OpenAPI 3 or Swagger 2.0 document.
pub(super) struct OpenApi {
    document: Value,
    /// What precedes the paths of the document in a URL (eBay's server `basePath`).
    base_path: String,
}

/// An operation found for a request.
pub(super) struct Operation<'s> {
    spec: &'s OpenApi,
    /// JSON pointer of the operation object.
    pub(super) pointer: String,
    pub(super) op: &'s Value,
    path_item: &'s Value,
}

impl OpenApi {
    pub(super) fn new(name: &str, base_path: &str) -> Self {
        Self {
            document: spec(name),
            base_path: base_path.to_string(),
        }
    }

    pub(super) fn document(&self) -> &Value {
        &self.document
    }

    fn swagger2(&self) -> bool {
        self.document.get("swagger").is_some()
    }

    /// The operation `method` `path` (a path of the document, e.g. `/v3/feeds/{feedId}`).
    pub(super) fn operation(&self, method: &Method, path: &str) -> Operation<'_> {
        let m = method.as_str().to_ascii_lowercase();
        let path_item = self
            .document
            .pointer(&format!("/paths/{}", escape(path)))
            .unwrap_or_else(|| panic!("no path {path}"));
        let op = path_item.get(&m).unwrap_or_else(|| panic!("no {m} {path}"));
        Operation {
            spec: self,
            pointer: format!("/paths/{}/{m}", escape(path)),
            op,
            path_item,
        }
    }

    /// Checks `request` against the operation of the document its method and URL path match,
    /// which must be named as the request is; returns that operation.
    pub(super) fn check(&self, request: &Request) -> Operation<'_> {
        let url = reqwest::Url::parse(&request.url).unwrap_or_else(|e| panic!("{e}"));
        let path = url
            .path()
            .strip_prefix(&self.base_path)
            .unwrap_or_else(|| panic!("{} is not under {}", url.path(), self.base_path));
        let paths = self.document["paths"].as_object().expect("paths");
        let mut matched = paths.keys().filter_map(|template| {
            let params = match_template(template, path)?;
            paths[template]
                .get(request.method.as_str().to_ascii_lowercase())
                .map(|_| (template.clone(), params))
        });
        let (template, path_values) = matched
            .next()
            .unwrap_or_else(|| panic!("no operation {} {path}", request.method));
        let operation = self.operation(&request.method, &template);
        assert_eq!(
            operation.op["operationId"], request.what,
            "{} {path}: the request's name is not the spec's operationId",
            request.method
        );
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        for param in operation.parameters() {
            let name = param["name"].as_str().unwrap_or_default();
            let required = param["required"].as_bool() == Some(true);
            let sent: Option<String> = match param["in"].as_str() {
                Some("path") => path_values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone()),
                Some("query") => query
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone()),
                Some("header") => header_value(request, name),
                _ => continue,
            };
            match sent {
                None => assert!(
                    !required,
                    "{}: required {} parameter {name} not sent",
                    request.what, param["in"]
                ),
                Some(value) => operation.check_parameter(param, &value),
            }
        }
        for (name, _) in &query {
            assert!(
                operation
                    .parameters()
                    .iter()
                    .any(|p| p["in"] == "query" && p["name"] == name.as_str()),
                "{}: query parameter {name} is not in the spec",
                request.what
            );
        }
        operation
    }
}

impl Operation<'_> {
    /// The operation's parameters, its path's included, references resolved.
    pub(super) fn parameters(&self) -> Vec<&Value> {
        let doc = &self.spec.document;
        self.path_item
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(
                self.op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .map(|p| resolve(doc, p))
            .collect()
    }

    /// A parameter value fits the parameter's type (Swagger 2.0 `type`/`items`, OpenAPI 3
    /// `schema`; arrays as comma-separated values).
    fn check_parameter(&self, param: &Value, value: &str) {
        let schema = param.get("schema").cloned().unwrap_or_else(|| {
            let mut s = param.clone();
            if let Some(o) = s.as_object_mut() {
                o.retain(|k, _| matches!(k.as_str(), "type" | "items" | "enum" | "maxItems"));
            }
            s
        });
        let instance = match schema["type"].as_str() {
            Some("array") => json!(value.split(',').collect::<Vec<_>>()),
            Some("integer") => json!(value
                .parse::<i64>()
                .unwrap_or_else(|_| panic!("{}: {value} is not an integer", param["name"]))),
            _ => json!(value),
        };
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_valid(
            &validator,
            &instance,
            &format!("parameter {}", param["name"]),
        );
    }

    /// The validator of the JSON request body.
    pub(super) fn body_validator(&self) -> Validator {
        let pointer = if self.spec.swagger2() {
            let i = self
                .op
                .get("parameters")
                .and_then(Value::as_array)
                .and_then(|ps| ps.iter().position(|p| p["in"] == "body"))
                .expect("a body parameter");
            format!("{}/parameters/{i}/schema", self.pointer)
        } else {
            format!(
                "{}/requestBody/content/application~1json/schema",
                self.pointer
            )
        };
        validator_at(&self.spec.document, &pointer, Draft::Draft4)
    }

    /// Checks `request`'s body against the operation's JSON body schema.
    pub(super) fn check_body(&self, request: &Request) -> Value {
        let body: Value = serde_json::from_slice(&request.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", request.what));
        assert_eq!(
            header_value(request, "content-type").as_deref(),
            Some("application/json")
        );
        assert_valid(&self.body_validator(), &body, request.what);
        body
    }

    /// The validator of the JSON answer with HTTP `status`.
    pub(super) fn response_validator(&self, status: u16) -> Validator {
        let pointer = if self.spec.swagger2() {
            format!("{}/responses/{status}/schema", self.pointer)
        } else {
            format!(
                "{}/responses/{status}/content/application~1json/schema",
                self.pointer
            )
        };
        validator_at(&self.spec.document, &pointer, Draft::Draft4)
    }

    /// Asserts `answer` is a valid answer with HTTP `status`, and returns it.
    pub(super) fn answer(&self, status: u16, answer: Value) -> Value {
        assert_valid(
            &self.response_validator(status),
            &answer,
            &format!("{} answer {status}", self.op["operationId"]),
        );
        answer
    }
}

/// `~` and `/` escaped for a JSON pointer.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The path parameters of `path` when it matches `template` (`/a/{x}/b`), decoded.
fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, p) in t.iter().zip(&p) {
        if let Some(name) = t.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            let value = percent_encoding::percent_decode_str(p)
                .decode_utf8()
                .ok()?
                .into_owned();
            params.push((name.to_string(), value));
        } else if t != p {
            return None;
        }
    }
    Some(params)
}

/// The value of header `name` (any case) of `request`, the credential header included.
pub(super) fn header_value(request: &Request, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .or_else(|| {
            request
                .auth
                .as_ref()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, s)| s.expose().to_string())
        })
}

/// The first whole number after `after` in `text` (a limit written in a description).
pub(super) fn number_after(text: &str, after: &str) -> usize {
    let at = text
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} not in {text:?}"));
    text[at + after.len()..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("no number after {after:?}: {e}"))
}

/// The `| rate | burst |` usage plan of an SP-API operation's description.
pub(super) fn usage_plan(op: &Value) -> (f64, u32) {
    let description = op["description"].as_str().unwrap_or_default();
    let at = description
        .find("| ---- | ---- |")
        .unwrap_or_else(|| panic!("no usage plan in {}", op["operationId"]));
    let row: Vec<&str> = description[at..]
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    (
        row[0].parse().unwrap_or_else(|e| panic!("{row:?}: {e}")),
        row[1].parse().unwrap_or_else(|e| panic!("{row:?}: {e}")),
    )
}

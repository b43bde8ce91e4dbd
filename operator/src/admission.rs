//! The checks the apiserver makes when `kubectl apply` sends an ImagePipeline,
//! made offline against the generated CRD.
//!
//! The CLI verbs run them before touching AWS, so a manifest that the cluster
//! would reject is rejected here too, with the same field paths. Order follows
//! the apiserver: strict decoding (unknown fields are errors, as with
//! `kubectl apply --validate=strict`, kubectl's default), schema defaults, the
//! OpenAPI schema, then the CEL rules (`x-kubernetes-validations`), including
//! transition rules against the previous object on update.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use kube::{
    CustomResourceExt, Resource,
    core::cel::{CompiledSchema, Validator, apply_defaults, compile_schema},
};
use serde_json::{Map, Value};

use crate::api::ImagePipeline;

/// One rejected field, named by its path in the object (`spec.kafka.brokers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, with `[i]` for list items.
    pub field: String,
    /// Why it was rejected.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// An object the apiserver would refuse.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// Not an ImagePipeline at all.
    #[error(
        "expected apiVersion {} and kind {}, found apiVersion {api_version:?} and kind {kind:?}",
        ImagePipeline::api_version(&()),
        ImagePipeline::kind(&())
    )]
    NotAnImagePipeline {
        /// apiVersion found.
        api_version: String,
        /// kind found.
        kind: String,
    },
    /// An ImagePipeline whose fields break the schema or its rules.
    #[error("ImagePipeline {name:?} is invalid:{}", bullet_list(errors))]
    Invalid {
        /// `metadata.name`, or empty when missing.
        name: String,
        /// Every rejected field.
        errors: Vec<FieldError>,
    },
}

fn bullet_list(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("\n  * {e}")).collect()
}

/// The apiserver's validation of ImagePipeline objects, built once from the CRD.
pub struct Admission {
    schema: Value,
    openapi: jsonschema::Validator,
    cel_rules: CompiledSchema,
    cel: Validator,
}

impl Default for Admission {
    fn default() -> Self {
        Self::new()
    }
}

impl Admission {
    /// Builds the checks from the CRD that `imagepipeline crd` prints.
    pub fn new() -> Self {
        let crd = ImagePipeline::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .map(|s| serde_json::to_value(s).expect("a CRD schema serializes to JSON"))
            .expect("the derived CRD has an openAPIV3Schema");
        let openapi = jsonschema::draft4::new(&as_strict_json_schema(&with_type_meta(&schema)))
            .expect("the CRD schema is a valid JSON schema");
        let cel_rules = compile_schema(&schema);
        Self {
            schema,
            openapi,
            cel_rules,
            cel: Validator::new(),
        }
    }

    /// The CRD's openAPIV3Schema, as the apiserver sees it.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// The compiled CEL rules of the CRD.
    pub fn cel_rules(&self) -> &CompiledSchema {
        &self.cel_rules
    }

    /// Admits `object` as a create, or as an update of `old` when given, and
    /// returns it with the schema defaults applied, as the apiserver stores it.
    pub fn admit(&self, object: &Value, old: Option<&Value>) -> Result<ImagePipeline, AdmissionError> {
        check_type_meta(object)?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let invalid = |errors| AdmissionError::Invalid {
            name: name.clone(),
            errors,
        };

        let mut errors = Vec::new();
        if name.is_empty() {
            errors.push(FieldError {
                field: "metadata.name".into(),
                message: "Required value: name is required".into(),
            });
        }
        let object = without_nulls(object);
        let defaulted = apply_defaults(&self.schema, &object);
        errors.extend(
            self.openapi
                .iter_errors(&defaulted)
                .flat_map(openapi_field_errors),
        );
        if !errors.is_empty() {
            // CEL rules assume the types the schema promises; on ill-typed input
            // they would only add noise.
            return Err(invalid(errors));
        }

        let old = old.map(without_nulls);
        if let Err(failures) = self
            .cel
            .validate_compiled(&self.cel_rules, &defaulted, old.as_ref())
        {
            errors.extend(failures.iter().map(|failure| FieldError {
                field: failure.field_path.clone(),
                message: failure.message.clone(),
            }));
            return Err(invalid(errors));
        }

        serde_json::from_value(defaulted).map_err(|e| {
            invalid(vec![FieldError {
                field: "spec".into(),
                message: format!("cannot be read as an ImagePipeline: {e}"),
            }])
        })
    }
}

fn check_type_meta(object: &Value) -> Result<(), AdmissionError> {
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if api_version == ImagePipeline::api_version(&()) && kind == ImagePipeline::kind(&()) {
        Ok(())
    } else {
        Err(AdmissionError::NotAnImagePipeline { api_version, kind })
    }
}

/// The apiserver drops `null` fields before defaulting; so do we, so that
/// `field: null` in YAML means "unset", never a type error.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A CRD's schema leaves out the fields every object has; the apiserver
/// checks those itself.
fn with_type_meta(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, field_schema) in [
            ("apiVersion", serde_json::json!({"type": "string"})),
            ("kind", serde_json::json!({"type": "string"})),
            ("metadata", serde_json::json!({"type": "object"})),
        ] {
            properties.entry(field).or_insert(field_schema);
        }
    }
    schema
}

/// Turns the structural schema into a JSON schema that rejects what the
/// apiserver rejects: unknown fields (Kubernetes prunes them; strict field
/// validation turns that into an error) and duplicate items in `set` lists.
fn as_strict_json_schema(schema: &Value) -> Value {
    let Value::Object(node) = schema else {
        return schema.clone();
    };
    let mut out: Map<String, Value> = node
        .iter()
        .map(|(key, child)| {
            let child = match key.as_str() {
                "properties" => Value::Object(
                    child
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, s)| (name.clone(), as_strict_json_schema(s)))
                        .collect(),
                ),
                "items" | "additionalProperties" => as_strict_json_schema(child),
                "allOf" | "anyOf" | "oneOf" => Value::Array(
                    child
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(as_strict_json_schema)
                        .collect(),
                ),
                _ => child.clone(),
            };
            (key.clone(), child)
        })
        .collect();
    let preserves_unknown = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if node.contains_key("properties") && !node.contains_key("additionalProperties") && !preserves_unknown {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if node.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".into(), Value::Bool(true));
    }
    out.into_iter().collect()
}

/// Words one OpenAPI failure the way `kubectl` users know from the apiserver.
fn openapi_field_errors(error: jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    let field = dotted_path(error.instance_path().as_str());
    let value = error.instance().to_string();
    let at = |message: String| {
        vec![FieldError {
            field: field.clone(),
            message,
        }]
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| FieldError {
                field: join(&field, name),
                message:
                    "Unknown field: not part of the ImagePipeline API (check its spelling and indentation)"
                        .into(),
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let property = property.as_str().unwrap_or_default();
            vec![FieldError {
                field: join(&field, property),
                message: "Required value".into(),
            }]
        }
        ValidationErrorKind::Minimum { limit } => at(format!(
            "Invalid value: {value}: must be greater than or equal to {limit}"
        )),
        ValidationErrorKind::Maximum { limit } => at(format!(
            "Invalid value: {value}: must be less than or equal to {limit}"
        )),
        ValidationErrorKind::MinLength { limit } => at(format!(
            "Invalid value: {value}: must be at least {limit} characters long"
        )),
        ValidationErrorKind::MaxLength { limit } => at(format!(
            "Invalid value: {value}: must be at most {limit} characters long"
        )),
        ValidationErrorKind::MinItems { limit } => {
            at(format!("Invalid value: must have at least {limit} items"))
        }
        ValidationErrorKind::MaxItems { limit } => at(format!("Too many: must have at most {limit} items")),
        ValidationErrorKind::MaxProperties { limit } => {
            at(format!("Too many: must have at most {limit} entries"))
        }
        ValidationErrorKind::UniqueItems => at(format!("Duplicate value: {value}: items must be distinct")),
        ValidationErrorKind::Pattern { pattern } => at(format!(
            "Invalid value: {value}: must match the pattern {pattern}"
        )),
        ValidationErrorKind::Enum { options } => at(format!(
            "Unsupported value: {value}: supported values: {}",
            options
                .as_array()
                .map(|o| o.iter().map(Value::to_string).collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| options.to_string())
        )),
        ValidationErrorKind::Type { .. } => at(format!("Invalid value: {value}: {error}")),
        _ => at(error.to_string()),
    }
}

/// `/spec/network/availabilityZones/0` → `spec.network.availabilityZones[0]`.
fn dotted_path(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .fold(String::new(), |path, segment| {
            if segment.parse::<usize>().is_ok() {
                format!("{path}[{segment}]")
            } else {
                join(&path, &segment)
            }
        })
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_become_kubectl_field_paths() {
        assert_eq!(dotted_path(""), "");
        assert_eq!(
            dotted_path("/spec/storage/retentionDays"),
            "spec.storage.retentionDays"
        );
        assert_eq!(
            dotted_path("/spec/network/availabilityZones/1"),
            "spec.network.availabilityZones[1]"
        );
        assert_eq!(dotted_path("/spec/tags/team~1owner"), "spec.tags.team/owner");
    }

    #[test]
    fn nulls_are_dropped_from_objects_only() {
        let value = serde_json::json!({"a": null, "b": {"c": null, "d": 1}, "e": [1, 2]});
        assert_eq!(
            without_nulls(&value),
            serde_json::json!({"b": {"d": 1}, "e": [1, 2]})
        );
    }

    #[test]
    fn strict_schema_rejects_unknown_fields_except_where_unknown_fields_are_kept() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "known": {"type": "object", "properties": {"x": {"type": "integer"}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            }
        });
        let strict = as_strict_json_schema(&schema);
        assert_eq!(strict["additionalProperties"], false);
        assert_eq!(strict["properties"]["known"]["additionalProperties"], false);
        assert!(strict["properties"]["free"].get("additionalProperties").is_none());
        assert_eq!(strict["properties"]["set"]["uniqueItems"], true);
    }
}

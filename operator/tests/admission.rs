//! The examples are admitted as the apiserver would admit them, and every
//! invalid fixture is rejected with the offending field named.
//!
//! A fixture under `tests/fixtures/invalid/` starts with
//! `# expect-rejected: <field path>`. One document is a create; two documents
//! are an update: the first is the stored object, the second is applied over it.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use imagepipeline_operator::{
    admission::{Admission, AdmissionError},
    api::v1alpha1::{Compression, DeletionPolicy, ImageContentType},
};
use kube::core::cel::{CompiledSchema, estimate_rule_cost};
use serde_json::Value;

/// A file of this checkout (not `env!("CARGO_MANIFEST_DIR")`: checkouts
/// share a target folder, so a test binary may come from another checkout).
fn repo_path(relative: &str) -> PathBuf {
    imagepipeline_e2e::repo_root().join(relative)
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Fixture {
    name: String,
    expected_field: String,
    old: Option<Value>,
    new: Value,
}

fn invalid_fixtures() -> Vec<Fixture> {
    let dir = repo_path("operator/tests/fixtures/invalid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture text");
            let expected_field = text
                .lines()
                .find_map(|line| line.strip_prefix("# expect-rejected: "))
                .unwrap_or_else(|| panic!("{} lacks '# expect-rejected: <field>'", path.display()))
                .trim()
                .to_owned();
            let mut docs = documents(&path);
            let new = docs.pop().expect("at least one document");
            let old = docs.pop();
            assert!(docs.is_empty(), "{}: one or two documents", path.display());
            Fixture {
                name: path.file_name().unwrap().to_string_lossy().into_owned(),
                expected_field,
                old,
                new,
            }
        })
        .collect()
}

#[test]
fn minimal_example_is_admitted_with_every_default_filled_in() {
    let admission = Admission::new();
    let [example] = documents(&repo_path("examples/imagepipeline.yaml"))
        .try_into()
        .unwrap();
    let pipeline = admission
        .admit(&example, None)
        .expect("the minimal example is valid");
    let spec = &pipeline.spec;

    assert_eq!(spec.region, "eu-west-1");
    assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
    assert!(!spec.paused);
    assert_eq!(spec.network.api_vpc_cidr, "10.40.0.0/16");
    assert_eq!(spec.network.kafka_vpc_cidr, "10.41.0.0/16");
    assert_eq!(spec.upload_api.instance_type, "t3.small");
    assert_eq!((spec.upload_api.min_size, spec.upload_api.max_size), (2, 6));
    assert_eq!(spec.upload_api.desired_capacity, None);
    assert_eq!(spec.upload_api.target_cpu_percent, 60);
    assert_eq!(spec.upload_api.max_image_bytes, 20 * 1024 * 1024);
    assert_eq!(
        spec.upload_api.allowed_content_types,
        [
            ImageContentType::Jpeg,
            ImageContentType::Png,
            ImageContentType::Webp,
            ImageContentType::Gif
        ]
    );
    assert_eq!(
        spec.kafka.brokers, None,
        "managed-broker defaults are the reconciler's"
    );
    assert_eq!(spec.kafka.topic, "images");
    assert_eq!((spec.kafka.partitions, spec.kafka.replication_factor), (12, 3));
    assert_eq!(spec.delivery.buffer_interval_seconds, 60);
    assert_eq!(spec.delivery.buffer_size_mib, 5);
    assert_eq!(spec.delivery.compression, Compression::Gzip);
    assert_eq!(spec.storage.retention_days, 7);
    assert_eq!(spec.storage.bucket_name, None);
    assert!(spec.analytics.enabled);
    assert_eq!(spec.analytics.node_type, "ra3.xlplus");
    assert_eq!(
        (spec.analytics.nodes, spec.analytics.database.as_str()),
        (2, "images")
    );
    assert_eq!(spec.services.upload.replicas, 2);
    assert_eq!(spec.services.stream_bridge.replicas, 2);
}

#[test]
fn full_example_is_admitted_and_sets_every_field_of_the_schema() {
    let admission = Admission::new();
    let examples = documents(&repo_path("examples/full.yaml"));
    for example in &examples {
        admission.admit(example, None).expect("the full example is valid");
    }

    // Every property the spec schema declares is set by one of the example's
    // documents (managed brokers and an existing cluster exclude each other),
    // so the example shows every field, and keeps doing so as fields are added.
    fn set_fields(schema: &Value, value: &Value, path: &str, set: &mut BTreeSet<String>) {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (name, property) in properties {
            let field = format!("{path}.{name}");
            if let Some(child) = value.get(name) {
                set.insert(field.clone());
                // Kubernetes' own types (resources) need not be spelled out whole.
                if child.is_object() && !field.ends_with(".resources") {
                    set_fields(property, child, &field, set);
                }
            }
        }
    }
    fn all_fields(schema: &Value, path: &str, all: &mut BTreeSet<String>) {
        for (name, property) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let field = format!("{path}.{name}");
            all.insert(field.clone());
            if !field.ends_with(".resources") {
                all_fields(property, &field, all);
            }
        }
    }
    let spec_schema = &admission.schema()["properties"]["spec"];
    let mut set = BTreeSet::new();
    for example in &examples {
        set_fields(spec_schema, &example["spec"], "spec", &mut set);
    }
    let mut all = BTreeSet::new();
    all_fields(spec_schema, "spec", &mut all);
    let missing: Vec<_> = all.difference(&set).collect();
    assert!(missing.is_empty(), "examples/full.yaml does not set: {missing:?}");
}

#[test]
fn every_invalid_fixture_is_rejected_naming_its_field() {
    let admission = Admission::new();
    let mut failures = Vec::new();
    for fixture in invalid_fixtures() {
        if let Some(old) = &fixture.old
            && let Err(e) = admission.admit(old, None)
        {
            failures.push(format!(
                "{}: the stored object is itself invalid: {e}",
                fixture.name
            ));
            continue;
        }
        match admission.admit(&fixture.new, fixture.old.as_ref()) {
            Ok(_) => failures.push(format!("{}: admitted, expected rejection", fixture.name)),
            Err(AdmissionError::Invalid { errors, .. }) => {
                let fields: BTreeSet<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                if fields != BTreeSet::from([fixture.expected_field.as_str()]) {
                    failures.push(format!(
                        "{}: rejected at {fields:?}, expected only at {}",
                        fixture.name, fixture.expected_field
                    ));
                }
                let rendered = AdmissionError::Invalid {
                    name: "bad".into(),
                    errors,
                }
                .to_string();
                if !rendered.contains(&fixture.expected_field) {
                    failures.push(format!(
                        "{}: message does not name the field: {rendered}",
                        fixture.name
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: unexpected error: {other}", fixture.name)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Each CEL rule of the CRD is broken by at least one fixture, so no rule is
/// untested: a rule that can never fail would show up here.
#[test]
fn every_validation_rule_is_exercised_by_a_fixture() {
    let admission = Admission::new();
    let mut rule_messages = BTreeSet::new();
    collect_rule_messages(admission.schema(), &mut rule_messages);
    assert!(
        rule_messages.len() >= 20,
        "found only {} rules",
        rule_messages.len()
    );

    let mut seen = BTreeSet::new();
    for fixture in invalid_fixtures() {
        if let Err(AdmissionError::Invalid { errors, .. }) =
            admission.admit(&fixture.new, fixture.old.as_ref())
        {
            seen.extend(errors.into_iter().map(|e| e.message));
        }
    }
    let untested: Vec<_> = rule_messages.iter().filter(|m| !seen.contains(*m)).collect();
    assert!(untested.is_empty(), "rules no fixture breaks: {untested:#?}");
}

fn collect_rule_messages(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(node) => {
            for rule in node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.insert(
                    rule["message"]
                        .as_str()
                        .expect("every rule has a message")
                        .to_owned(),
                );
            }
            node.values().for_each(|child| collect_rule_messages(child, out));
        }
        Value::Array(items) => items.iter().for_each(|child| collect_rule_messages(child, out)),
        _ => {}
    }
}

#[test]
fn allowed_updates_are_admitted() {
    let admission = Admission::new();
    let old = documents(&repo_path("examples/full.yaml")).remove(0);
    let mut new = old.clone();
    let spec = new["spec"].as_object_mut().unwrap();
    spec["storage"]["retentionDays"] = 30.into();
    spec["uploadApi"]["maxSize"] = 20.into();
    spec["uploadApi"]["instanceType"] = "t3.large".into();
    spec["kafka"]["partitions"] = 48.into();
    spec["network"]["clusterVpcId"] = "vpc-0fedcba9876543210".into();
    spec["deletionPolicy"] = "Delete".into();
    spec["paused"] = true.into();
    admission
        .admit(&new, Some(&old))
        .expect("mutable fields may change");
}

#[test]
fn every_rule_compiles_and_fits_the_apiserver_cost_budget() {
    let admission = Admission::new();
    let mut problems = Vec::new();
    check_compiled(admission.cel_rules(), "", &mut problems);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

fn check_compiled(node: &CompiledSchema, path: &str, problems: &mut Vec<String>) {
    for rule in &node.validations {
        match rule {
            Err(e) => problems.push(format!("{path}: does not compile: {e:?}")),
            Ok(compiled) => {
                // Only cost and bounds: kube-cel 0.8's scope check mistakes the
                // variables of `all`/`exists_one` for undeclared ones.
                for warning in estimate_rule_cost(&compiled.rule.rule, node) {
                    problems.push(format!("{path}: {}: {}", compiled.rule.rule, warning.message));
                }
            }
        }
    }
    for (name, child) in &node.properties {
        check_compiled(child, &format!("{path}.{name}"), problems);
    }
    if let Some(items) = &node.items {
        check_compiled(items, &format!("{path}[]"), problems);
    }
    if let Some(values) = &node.additional_properties {
        check_compiled(values, &format!("{path}{{}}"), problems);
    }
}

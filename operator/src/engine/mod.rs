//! The reconcile engine shared by the controller and the CLI.
//!
//! Each AWS component is a declaration (see [`Declared`]): its resources in
//! the order they are made, each a [`resource::Resource`] with the same verbs,
//! driven by a [`resource::Walk`]. The engine runs the components it is handed
//! in dependency order, deletes in reverse order, and reports one condition
//! per component. ARCHITECTURE.md draws the layers.

mod context;
pub mod resource;
mod run;
pub mod status;

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

#[cfg(test)]
pub(crate) use context::context_from_yaml;
pub use context::{
    COMPONENT_TAG, MasterUser, NAME_PREFIX, OWNER_TAG, Owner, PipelineContext, RETAINED_TAG, SecretText,
};
pub use run::{
    ComponentReport, ComponentState, Declared, Engine, EngineError, Goal, Mode, PassReport, RunComponent,
    declared,
};

/// AWS tags, key to value: the one shape every resource's tags take here.
pub type Tags = BTreeMap<String, String>;

use crate::api::v1alpha1::{AwsResource, KafkaBrokerStatus};
pub use crate::error::{ComponentError, ErrorKind};

/// The components, in the order they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    Network,
    Storage,
    Metadata,
    Delivery,
    UploadTier,
    Kafka,
    Analytics,
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 7] = [
        ComponentKind::Network,
        ComponentKind::Storage,
        ComponentKind::Metadata,
        ComponentKind::Delivery,
        ComponentKind::UploadTier,
        ComponentKind::Kafka,
        ComponentKind::Analytics,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ComponentKind::Network => "Network",
            ComponentKind::Storage => "Storage",
            ComponentKind::Metadata => "Metadata",
            ComponentKind::Delivery => "Delivery",
            ComponentKind::UploadTier => "UploadTier",
            ComponentKind::Kafka => "Kafka",
            ComponentKind::Analytics => "Analytics",
        }
    }

    /// The value of the `imagepipeline.io/component` tag.
    pub fn tag_value(self) -> &'static str {
        match self {
            ComponentKind::Network => "network",
            ComponentKind::Storage => "storage",
            ComponentKind::Metadata => "metadata",
            ComponentKind::Delivery => "delivery",
            ComponentKind::UploadTier => "upload-tier",
            ComponentKind::Kafka => "kafka",
            ComponentKind::Analytics => "analytics",
        }
    }

    /// The status condition that reports this component.
    pub fn condition_type(self) -> String {
        format!("{}Ready", self.name())
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a step does to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One change to one resource, as `plan` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    /// What is changed, e.g. `S3 bucket photos: lifecycle rules`.
    pub resource: String,
    /// The fields that differ, as `field: observed → desired`.
    pub fields: Vec<String>,
}

impl Change {
    pub fn new(action: Action, resource: impl Into<String>) -> Self {
        Self {
            action,
            resource: resource.into(),
            fields: Vec::new(),
        }
    }

    pub fn field(mut self, name: &str, observed: impl fmt::Display, desired: impl fmt::Display) -> Self {
        self.fields.push(format!("{name}: {observed} → {desired}"));
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.fields.push(text.into());
        self
    }
}

/// Plan shows one line per resource. The settings a resource gets right after
/// it is created (its tags, encryption, lifecycle rules) are separate calls,
/// but to a reader they are part of creating it: such updates become fields
/// of the create, showing only the value they set.
pub fn fold_into_creates(changes: Vec<Change>) -> Vec<Change> {
    let mut folded: Vec<Change> = Vec::with_capacity(changes.len());
    for change in changes {
        let creating = folded.iter_mut().find(|earlier| {
            earlier.action == Action::Create
                && change.action == Action::Update
                && aspect_of(&change.resource, &earlier.resource).is_some()
        });
        let Some(create) = creating else {
            folded.push(change);
            continue;
        };
        let aspect = aspect_of(&change.resource, &create.resource).unwrap_or_default();
        if change.fields.is_empty() && !aspect.is_empty() {
            create.fields.push(aspect.to_owned());
        }
        for field in &change.fields {
            // `name: observed → desired`: nothing is observed yet.
            let field = match (field.split_once(": "), field.rsplit_once(" → ")) {
                (Some((name, _)), Some((_, desired))) => format!("{name}: {desired}"),
                _ => field.clone(),
            };
            // Named once: `lifecycle rules: …`, not `lifecycle rules: rules: …`.
            let field = match field.split_once(": ") {
                _ if aspect.is_empty() => field,
                Some((name, value)) if aspect.ends_with(name) => format!("{aspect}: {value}"),
                _ if field.starts_with(aspect.trim_end_matches('s')) => field,
                _ => format!("{aspect}: {field}"),
            };
            create.fields.push(field);
        }
    }
    folded
}

/// What part of `created` the resource `updated` names (`tags` of
/// `S3 bucket photos tags`), or `None` when it names something else.
fn aspect_of<'a>(updated: &'a str, created: &str) -> Option<&'a str> {
    let rest = updated.strip_prefix(created)?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix(": ").or_else(|| rest.strip_prefix(' '))
}

/// One plan field: `name: observed → desired`.
pub fn field(name: &str, observed: impl fmt::Display, desired: impl fmt::Display) -> String {
    format!("{name}: {observed} → {desired}")
}

/// A field difference for tag maps: which keys are added, changed, removed.
pub fn tag_changes(observed: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> Vec<String> {
    let mut fields = Vec::new();
    for (key, value) in desired {
        match observed.get(key) {
            None => fields.push(format!("tag {key}: (absent) → {value}")),
            Some(old) if old != value => fields.push(format!("tag {key}: {old} → {value}")),
            Some(_) => {}
        }
    }
    for (key, value) in observed {
        if !desired.contains_key(key) {
            fields.push(format!("tag {key}: {value} → (absent)"));
        }
    }
    fields
}

/// Keys `observed` has and `desired` does not: the tags to remove before
/// setting the desired ones.
pub fn removed_tag_keys(
    observed: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Vec<String> {
    observed
        .keys()
        .filter(|key| !desired.contains_key(*key))
        .cloned()
        .collect()
}

/// Whether a component is done, or still waiting on AWS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// AWS is still working (a cluster being created); the text says on what.
    Waiting(String),
}

impl Readiness {
    /// Ready when the resource's status is `ready_status`; otherwise waiting,
    /// saying what the resource is doing or that it does not exist yet.
    pub fn of(resource: &str, status: Option<&str>, ready_status: &str) -> Self {
        match status {
            Some(status) if status == ready_status => Readiness::Ready,
            Some(status) => Readiness::Waiting(format!("{resource} is {status}")),
            None => Readiness::Waiting(format!("{resource} does not exist yet")),
        }
    }
}

/// A subnet made by the network component.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetOutput {
    pub id: String,
    pub availability_zone: String,
    pub cidr: String,
}

/// What components make that later components use, and what the status
/// shows. The endpoints the status lists are fields, set once the resource
/// exists; what one component hands the components that stand on it is its
/// own typed outputs ([`Outputs::publish`]), which the engine carries without
/// knowing their types.
#[derive(Clone, Default)]
pub struct Outputs {
    pub bucket: Option<String>,
    pub table: Option<String>,
    pub delivery_stream: Option<String>,
    pub warehouse: Option<String>,
    /// The load balancer's URL, `http(s)://<dns name>`.
    pub upload_url: Option<String>,
    /// `host:port,…` of the brokers, managed or given in the spec.
    pub kafka_bootstrap: Option<String>,
    pub resources: Vec<AwsResource>,
    /// The managed brokers and what they last reported.
    pub kafka_brokers: Vec<KafkaBrokerStatus>,
    pub published: Published,
}

/// Components' own typed outputs, by type.
#[derive(Clone, Default)]
pub struct Published(BTreeMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Outputs {
    /// Hands `outputs` to the components that run later in this pass.
    pub fn publish<T: Any + Send + Sync>(&mut self, outputs: T) {
        self.published.0.insert(TypeId::of::<T>(), Arc::new(outputs));
    }

    /// The outputs of type `T` a component published, if it ran.
    pub fn of<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.published.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

impl fmt::Debug for Outputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outputs")
            .field("bucket", &self.bucket)
            .field("table", &self.table)
            .field("delivery_stream", &self.delivery_stream)
            .field("warehouse", &self.warehouse)
            .field("upload_url", &self.upload_url)
            .field("kafka_bootstrap", &self.kafka_bootstrap)
            .field("resources", &self.resources)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("published", &self.published.0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_of_a_resource_being_created_are_fields_of_its_create() {
        let observed = BTreeMap::new();
        let desired = BTreeMap::from([("team".to_owned(), "media".to_owned())]);
        let mut tags = Change::new(Action::Update, "S3 bucket photos tags");
        tags.fields = tag_changes(&observed, &desired);
        let changes = vec![
            Change::new(Action::Create, "S3 bucket photos"),
            tags,
            Change::new(Action::Update, "S3 bucket photos default encryption").field(
                "algorithm",
                "(none)",
                "AES256",
            ),
            Change::new(Action::Update, "S3 bucket photos lifecycle rules")
                .note("rules: expire images/ after 7d"),
            Change::new(Action::Create, "IAM role firehose"),
            Change::new(Action::Update, "IAM role firehose: inline policy"),
            // Another resource whose name merely starts the same way.
            Change::new(Action::Update, "S3 bucket photos-archive tags"),
            Change::new(Action::Delete, "S3 bucket photos old rule"),
        ];
        let folded = fold_into_creates(changes);
        assert_eq!(folded.len(), 4, "{folded:#?}");
        assert_eq!(
            folded[0].fields,
            vec![
                "tag team: media",
                "default encryption: algorithm: AES256",
                "lifecycle rules: expire images/ after 7d",
            ]
        );
        assert_eq!(folded[1].fields, vec!["inline policy"]);
        assert_eq!(folded[2].resource, "S3 bucket photos-archive tags");
        assert_eq!(folded[3].action, Action::Delete);
    }
}

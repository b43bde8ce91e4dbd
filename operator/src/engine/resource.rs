//! The per-resource layer: what every AWS resource kind provides (the verbs
//! AWS Controllers for Kubernetes gives each resource), and the walk that
//! drives a component's resources in the order it declares them.
//!
//! A resource module (`crate::resources::*`) says how to find, compare,
//! create, update and delete one kind. What all resources share is here,
//! once: the ownership check of what is found, plan text from the delta,
//! references to what earlier resources made, and teardown in reverse order.

use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;

use crate::api::v1alpha1::{AwsResource, DeletionPolicy};
use crate::aws::AwsClients;
use crate::engine::{Action, Change, ComponentKind, OWNER_TAG, RETAINED_TAG, Readiness, Tags};
use crate::error::ComponentError;

/// One AWS resource as a component wants it. The value itself is the desired
/// state; `Observed` is what AWS reports.
pub trait Resource: Send + Sync {
    type Observed: Clone + fmt::Debug + Send + Sync + 'static;

    /// Its CloudFormation type, for the status's list of resources; `None`
    /// for parts of another resource (a route in a table).
    const TYPE: Option<&'static str>;

    /// How plan and messages name it, e.g. `api VPC ipl-media-photos-api-…`.
    fn label(&self) -> String;

    /// Ids of earlier resources it needs; while one is not made yet (in a
    /// plan) it cannot be looked up and would be created.
    fn references(&self) -> Vec<&Ref> {
        Vec::new()
    }

    /// Finds it by its tags or deterministic name.
    fn find(
        &self,
        aws: &AwsClients,
    ) -> impl Future<Output = Result<Option<Self::Observed>, ComponentError>> + Send;

    /// What differs from the spec, as plan fields (`name: observed → desired`);
    /// empty when it is as desired. An error when it can never be made so.
    fn delta(&self, observed: &Self::Observed) -> Result<Vec<String>, ComponentError>;

    /// What plan shows of a resource to be created.
    fn create_fields(&self) -> Vec<String> {
        Vec::new()
    }

    /// Makes it, with everything `delta` checks, and says what was made.
    fn create(&self, aws: &AwsClients)
    -> impl Future<Output = Result<Self::Observed, ComponentError>> + Send;

    /// Puts back what `delta` found different.
    fn update(
        &self,
        aws: &AwsClients,
        observed: &Self::Observed,
    ) -> impl Future<Output = Result<(), ComponentError>> + Send;

    /// Deletes it; finding it already gone is success.
    fn delete(
        &self,
        aws: &AwsClients,
        observed: &Self::Observed,
    ) -> impl Future<Output = Result<(), ComponentError>> + Send;

    /// The id the status lists and later resources reference.
    fn id(observed: &Self::Observed) -> String;

    /// Its ARN, when the status should show one.
    fn arn(_observed: &Self::Observed) -> Option<String> {
        None
    }

    /// Its tags, when the kind has tags: checked for ownership when found.
    fn tags(_observed: &Self::Observed) -> Option<&Tags> {
        None
    }

    /// Whether AWS has finished making it.
    fn readiness(&self, _observed: &Self::Observed) -> Readiness {
        Readiness::Ready
    }

    /// AWS is deleting it already (a cluster `deleting`, a table
    /// `DELETING`): why a teardown waits instead of deleting it again.
    fn going(&self, _observed: &Self::Observed) -> Option<String> {
        None
    }

    /// AWS deletes it in the background (a Firehose stream goes `DELETING`):
    /// once it is asked to, a teardown deletes nothing declared before it
    /// until the next round has found it gone, or waits on it as
    /// [`going`](Resource::going).
    const DELETED_IN_BACKGROUND: bool = false;

    /// It holds the pipeline's data: under `deletionPolicy: Retain` it is
    /// kept, tagged as retained, instead of deleted.
    const KEEPS_DATA: bool = false;

    /// The tags it is made with; a kept resource keeps them and gains the
    /// retained tag.
    fn desired_tags(&self) -> Option<&Tags> {
        None
    }

    /// Sets exactly `tags` on it. Resources that keep data implement it.
    fn set_tags(
        &self,
        _aws: &AwsClients,
        _observed: &Self::Observed,
        _tags: &Tags,
    ) -> impl Future<Output = Result<(), ComponentError>> + Send {
        let label = self.label();
        async move {
            Err(ComponentError::terminal(
                "InternalError",
                format!("the operator cannot tag {label} as retained"),
            ))
        }
    }
}

/// The id of a resource made earlier in the walk, or, in a plan, one that is
/// yet to be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    Known(String),
    /// Made by this apply; the text names it.
    Pending(String),
}

impl Ref {
    /// The id of `observed`, or pending on the resource `what`.
    pub fn to<T>(observed: Option<&T>, id: impl Fn(&T) -> String, what: impl Into<String>) -> Self {
        match observed {
            Some(observed) => Ref::Known(id(observed)),
            None => Ref::Pending(what.into()),
        }
    }

    pub fn known(&self) -> Option<&str> {
        match self {
            Ref::Known(id) => Some(id),
            Ref::Pending(_) => None,
        }
    }

    /// The id, for a resource whose references were checked.
    pub fn id(&self) -> &str {
        self.known().unwrap_or_default()
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Known(id) => f.write_str(id),
            Ref::Pending(what) => write!(f, "({what}, made by this apply)"),
        }
    }
}

/// What a walk does with the resources declared to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkMode {
    /// Create and update until each resource is as declared.
    Apply,
    /// Record what apply would change; change nothing.
    Plan,
    /// Only find what exists: the first half of a teardown.
    Find,
}

/// A resource found (or made) during a walk, kept to list it in the status
/// and to delete it in reverse order.
trait Found: Send + Sync {
    fn label(&self) -> String;
    fn listed(&self) -> Option<(&'static str, String, Option<String>)>;
    fn delete<'a>(&'a self, aws: &'a AwsClients) -> BoxFuture<'a, Result<(), ComponentError>>;
    fn deleted_in_background(&self) -> bool;
    fn set_tags<'a>(
        &'a self,
        aws: &'a AwsClients,
        tags: &'a Tags,
    ) -> BoxFuture<'a, Result<(), ComponentError>>;
}

struct FoundResource<R: Resource> {
    desired: R,
    observed: R::Observed,
}

impl<R: Resource + Clone + 'static> Found for FoundResource<R> {
    fn label(&self) -> String {
        self.desired.label()
    }

    fn listed(&self) -> Option<(&'static str, String, Option<String>)> {
        R::TYPE.map(|type_| (type_, R::id(&self.observed), R::arn(&self.observed)))
    }

    fn delete<'a>(&'a self, aws: &'a AwsClients) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(self.desired.delete(aws, &self.observed))
    }

    fn deleted_in_background(&self) -> bool {
        R::DELETED_IN_BACKGROUND
    }

    fn set_tags<'a>(
        &'a self,
        aws: &'a AwsClients,
        tags: &'a Tags,
    ) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(self.desired.set_tags(aws, &self.observed, tags))
    }
}

enum Entry {
    Resource(Box<dyn Found>),
    /// Kept under `Retain`: given these tags instead of being deleted.
    Retain(Box<dyn Found>, Tags),
    /// Teardown stops here, saying why, until the reason is gone.
    Hold(String),
}

/// Drives the resources a component declares, in order.
pub struct Walk<'a> {
    aws: &'a AwsClients,
    owner: String,
    mode: WalkMode,
    /// What a teardown does with resources that keep data.
    policy: DeletionPolicy,
    changes: Vec<Change>,
    entries: Vec<Entry>,
    waiting: Option<String>,
}

impl<'a> Walk<'a> {
    pub fn new(aws: &'a AwsClients, owner: impl Into<String>, mode: WalkMode) -> Self {
        Self {
            aws,
            owner: owner.into(),
            mode,
            policy: DeletionPolicy::Delete,
            changes: Vec::new(),
            entries: Vec::new(),
            waiting: None,
        }
    }

    /// For a teardown: what becomes of the resources that keep data.
    pub fn under(mut self, policy: DeletionPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn aws(&self) -> &'a AwsClients {
        self.aws
    }

    pub fn mode(&self) -> WalkMode {
        self.mode
    }

    /// Makes `desired` exist as declared (or, in a plan, records what that
    /// takes) and returns what AWS holds; `None` while it does not exist.
    pub async fn ensure<R: Resource + Clone + 'static>(
        &mut self,
        desired: &R,
    ) -> Result<Option<R::Observed>, ComponentError> {
        let resolved = desired.references().iter().all(|r| r.known().is_some());
        let found = if resolved {
            desired.find(self.aws).await?
        } else {
            None
        };
        let Some(observed) = found else {
            return self.create(desired, resolved).await;
        };
        if let Some(tags) = R::tags(&observed) {
            let owned = check_owner(tags, &self.owner, &desired.label());
            if owned.is_err() && self.mode == WalkMode::Find {
                // Another pipeline's: a teardown leaves it alone.
                return Ok(Some(observed));
            }
            owned?;
        }
        if self.mode == WalkMode::Find {
            match desired.going(&observed) {
                Some(reason) => self.entries.push(Entry::Hold(reason)),
                None => self.keep_or_remember(desired, &observed),
            }
            return Ok(Some(observed));
        }
        self.remember(desired, &observed);
        let delta = desired.delta(&observed)?;
        if !delta.is_empty() {
            let mut change = Change::new(Action::Update, desired.label());
            change.fields = delta;
            self.changes.push(change);
            if self.mode == WalkMode::Apply {
                desired.update(self.aws, &observed).await?;
            }
        }
        if let Readiness::Waiting(reason) = desired.readiness(&observed) {
            self.waiting.get_or_insert(reason);
        }
        Ok(Some(observed))
    }

    async fn create<R: Resource + Clone + 'static>(
        &mut self,
        desired: &R,
        resolved: bool,
    ) -> Result<Option<R::Observed>, ComponentError> {
        if self.mode == WalkMode::Find {
            return Ok(None);
        }
        let mut change = Change::new(Action::Create, desired.label());
        change.fields = desired.create_fields();
        self.changes.push(change);
        if self.mode == WalkMode::Plan || !resolved {
            self.waiting
                .get_or_insert_with(|| format!("{} does not exist yet", desired.label()));
            return Ok(None);
        }
        let observed = desired.create(self.aws).await?;
        self.remember(desired, &observed);
        Ok(Some(observed))
    }

    /// Deletes what exists but is no longer declared (a subnet of a zone
    /// taken out of the spec).
    pub async fn remove<R: Resource + Clone + 'static>(
        &mut self,
        unwanted: &R,
        observed: &R::Observed,
    ) -> Result<(), ComponentError> {
        if self.mode == WalkMode::Find {
            self.remember(unwanted, observed);
            return Ok(());
        }
        self.changes.push(Change::new(Action::Delete, unwanted.label()));
        if self.mode == WalkMode::Apply {
            unwanted.delete(self.aws, observed).await?;
        }
        Ok(())
    }

    /// During a teardown, nothing declared before this point is deleted
    /// while `reason` holds (AWS still releasing what stands on it).
    pub fn hold(&mut self, reason: Option<String>) {
        if let Some(reason) = reason {
            self.entries.push(Entry::Hold(reason));
        }
    }

    /// Under `Retain`, a resource that keeps data is tagged as retained
    /// instead of deleted; once it is, the teardown has nothing left to do
    /// with it.
    fn keep_or_remember<R: Resource + Clone + 'static>(&mut self, desired: &R, observed: &R::Observed) {
        let kept = self.policy == DeletionPolicy::Retain && R::KEEPS_DATA;
        let (true, Some(tags)) = (kept, desired.desired_tags()) else {
            return self.remember(desired, observed);
        };
        let mut retained = tags.clone();
        retained.insert(RETAINED_TAG.to_owned(), "true".to_owned());
        if R::tags(observed) != Some(&retained) {
            let found = FoundResource {
                desired: desired.clone(),
                observed: observed.clone(),
            };
            self.entries.push(Entry::Retain(Box::new(found), retained));
        }
    }

    fn remember<R: Resource + Clone + 'static>(&mut self, desired: &R, observed: &R::Observed) {
        self.entries.push(Entry::Resource(Box::new(FoundResource {
            desired: desired.clone(),
            observed: observed.clone(),
        })));
    }

    /// The changes made (apply) or pending (plan), in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The first resource AWS is still working on.
    pub fn readiness(&self) -> Readiness {
        match &self.waiting {
            None => Readiness::Ready,
            Some(reason) => Readiness::Waiting(reason.clone()),
        }
    }

    /// Whether the walk found anything to tear down or wait for.
    pub fn found_any(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The resources found or made, for the status.
    pub fn listed(&self, component: ComponentKind) -> Vec<AwsResource> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Resource(found) | Entry::Retain(found, _) => found.listed(),
                Entry::Hold(_) => None,
            })
            .map(|(type_, id, arn)| AwsResource {
                component: component.name().to_owned(),
                type_: type_.to_owned(),
                id,
                arn,
            })
            .collect()
    }

    /// Deletes what the walk found, last declared first (or, under `Retain`,
    /// tags what keeps data as retained). Stops at a hold,
    /// returning its reason: what was declared before it must wait. Stops
    /// too, returning no reason, after deleting what AWS deletes in the
    /// background: the next round finds whether it is gone.
    pub async fn tear_down(&mut self) -> Result<Option<String>, ComponentError> {
        while let Some(entry) = self.entries.pop() {
            match entry {
                Entry::Hold(reason) => return Ok(Some(reason)),
                Entry::Resource(found) => {
                    self.changes.push(Change::new(Action::Delete, found.label()));
                    found.delete(self.aws).await?;
                    if found.deleted_in_background() {
                        return Ok(None);
                    }
                }
                Entry::Retain(found, tags) => {
                    let change = Change::new(Action::Update, format!("{} tags", found.label())).field(
                        RETAINED_TAG,
                        "(absent)",
                        "true",
                    );
                    self.changes.push(change);
                    found.set_tags(self.aws, &tags).await?;
                }
            }
        }
        Ok(None)
    }
}

/// A resource is ours when it carries our owner tag, and adopted when it
/// carries none (a crash between creating and tagging it); another
/// pipeline's is never touched.
pub fn check_owner(tags: &Tags, owner: &str, resource: &str) -> Result<(), ComponentError> {
    match tags.get(OWNER_TAG) {
        Some(other) if other != owner => Err(ComponentError::terminal(
            "OwnedByAnotherPipeline",
            format!(
                "{resource} already belongs to ImagePipeline {other} (tag {OWNER_TAG}); \
                 give this pipeline another name for it or delete the other pipeline"
            ),
        )),
        _ => Ok(()),
    }
}

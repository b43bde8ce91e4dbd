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

    /// What a delete of it shows besides its label (what becomes of its data).
    fn delete_fields(&self) -> Vec<String> {
        Vec::new()
    }

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

    /// AWS finishes deleting it later (a cluster goes through `deleting`): a
    /// teardown stops after asking and finds again, so that what it stands
    /// on waits until it is gone (see `going`).
    const DELETED_LATER: bool = false;

    /// It exists but can never be this pipeline's (a bucket name another
    /// account holds): the error apply and plan stop at. A teardown leaves
    /// it alone, as it leaves another pipeline's.
    fn unavailable(&self, _observed: &Self::Observed) -> Option<ComponentError> {
        None
    }

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
    fn delete_fields(&self) -> Vec<String>;
    fn deleted_later(&self) -> bool;
    fn listed(&self) -> Option<(&'static str, String, Option<String>)>;
    /// What the status's list says of it: `Ready`, `Pending`, `Deleting`.
    fn state(&self) -> &'static str;
    fn delete<'a>(&'a self, aws: &'a AwsClients) -> BoxFuture<'a, Result<(), ComponentError>>;
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

    fn delete_fields(&self) -> Vec<String> {
        self.desired.delete_fields()
    }

    fn deleted_later(&self) -> bool {
        R::DELETED_LATER
    }

    fn listed(&self) -> Option<(&'static str, String, Option<String>)> {
        R::TYPE.map(|type_| (type_, R::id(&self.observed), R::arn(&self.observed)))
    }

    fn state(&self) -> &'static str {
        if self.desired.going(&self.observed).is_some() {
            "Deleting"
        } else if self.desired.readiness(&self.observed) == Readiness::Ready {
            "Ready"
        } else {
            "Pending"
        }
    }

    fn delete<'a>(&'a self, aws: &'a AwsClients) -> BoxFuture<'a, Result<(), ComponentError>> {
        Box::pin(self.desired.delete(aws, &self.observed))
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
    /// Kept under `Retain` and tagged so already: left alone, and listed in
    /// the status as what the pipeline left behind.
    Kept(Box<dyn Found>),
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
    not_serving: Option<NotServing>,
}

/// Everything exists, and a check of whether it does its job says it does
/// not: the condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotServing {
    pub reason: String,
    pub message: String,
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
            not_serving: None,
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
        self.converge(desired)
            .await
            .map_err(|err| err.concerning(|| desired.label()))
    }

    async fn converge<R: Resource + Clone + 'static>(
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
        if let Some(err) = desired.unavailable(&observed) {
            return match self.mode {
                WalkMode::Find => Ok(None),
                WalkMode::Apply | WalkMode::Plan => Err(err),
            };
        }
        if let Some(tags) = R::tags(&observed) {
            let owned = check_owner(tags, &self.owner, &desired.label());
            if owned.is_err() && self.mode == WalkMode::Find {
                // Another pipeline's: a teardown leaves it alone.
                return Ok(Some(observed));
            }
            owned?;
        }
        if self.mode == WalkMode::Find {
            self.found_for_teardown(desired, &observed);
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
        let mut change = Change::new(Action::Delete, unwanted.label());
        change.fields = unwanted.delete_fields();
        self.changes.push(change);
        if self.mode == WalkMode::Apply {
            unwanted
                .delete(self.aws, observed)
                .await
                .map_err(|err| err.concerning(|| unwanted.label()))?;
        }
        Ok(())
    }

    /// Takes away what the spec no longer wants at all (a component turned
    /// off), as a teardown under `policy` would: deleted, or, when it keeps
    /// data, kept and tagged retained. Apply does it at once, in the order
    /// asked; a teardown deletes it with the rest. Found by tag or name, so
    /// its references need not be known. Returns what was found of ours,
    /// including one AWS is already deleting, which is left to finish.
    pub async fn retire<R: Resource + Clone + 'static>(
        &mut self,
        unwanted: &R,
        policy: DeletionPolicy,
    ) -> Result<Option<R::Observed>, ComponentError> {
        self.take_away(unwanted, policy)
            .await
            .map_err(|err| err.concerning(|| unwanted.label()))
    }

    async fn take_away<R: Resource + Clone + 'static>(
        &mut self,
        unwanted: &R,
        policy: DeletionPolicy,
    ) -> Result<Option<R::Observed>, ComponentError> {
        let Some(observed) = unwanted.find(self.aws).await? else {
            return Ok(None);
        };
        let label = unwanted.label();
        if R::tags(&observed).is_some_and(|tags| check_owner(tags, &self.owner, &label).is_err()) {
            return Ok(None);
        }
        if self.mode == WalkMode::Find {
            self.found_for_teardown(unwanted, &observed);
            return Ok(Some(observed));
        }
        let found = Box::new(FoundResource {
            desired: unwanted.clone(),
            observed: observed.clone(),
        });
        let fate = match unwanted.going(&observed) {
            Some(_) => Fate::Kept,
            None => fate(policy, unwanted, &observed),
        };
        match fate {
            Fate::Delete => {
                let mut change = Change::new(Action::Delete, label);
                change.fields = unwanted.delete_fields();
                self.changes.push(change);
                if self.mode == WalkMode::Apply {
                    unwanted.delete(self.aws, &observed).await?;
                }
            }
            Fate::Retag(tags) => {
                self.changes.push(retention(&label));
                if self.mode == WalkMode::Apply {
                    unwanted.set_tags(self.aws, &observed, &tags).await?;
                }
                self.entries.push(Entry::Kept(found));
            }
            Fate::Kept => self.entries.push(Entry::Kept(found)),
        }
        Ok(Some(observed))
    }

    /// During a teardown, nothing declared before this point is deleted
    /// while `reason` holds (AWS still releasing what stands on it).
    pub fn hold(&mut self, reason: Option<String>) {
        if let Some(reason) = reason {
            self.entries.push(Entry::Hold(reason));
        }
    }

    /// A teardown waits on what AWS is deleting already; under `Retain`, a
    /// resource that keeps data is tagged as retained instead of deleted,
    /// and once it is, the teardown only lists it.
    fn found_for_teardown<R: Resource + Clone + 'static>(&mut self, desired: &R, observed: &R::Observed) {
        if let Some(reason) = desired.going(observed) {
            return self.entries.push(Entry::Hold(reason));
        }
        let found = Box::new(FoundResource {
            desired: desired.clone(),
            observed: observed.clone(),
        });
        self.entries.push(match fate(self.policy, desired, observed) {
            Fate::Delete => Entry::Resource(found),
            Fate::Retag(tags) => Entry::Retain(found, tags),
            Fate::Kept => Entry::Kept(found),
        });
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

    /// What the component made exists but was checked not to serve (brokers
    /// whose heartbeats say they do not): the component is not ready, for
    /// `reason`.
    pub fn not_serving(&mut self, why: NotServing) {
        self.not_serving = Some(why);
    }

    /// Why the component does not serve, when a check said so.
    pub fn serving_check(&self) -> Option<&NotServing> {
        self.not_serving.as_ref()
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
        self.entries.iter().any(|entry| !matches!(entry, Entry::Kept(_)))
    }

    /// The resources found or made, for the status.
    pub fn listed(&self, component: ComponentKind) -> Vec<AwsResource> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Resource(found) => Some((found, found.state())),
                Entry::Retain(found, _) | Entry::Kept(found) => Some((found, "Retained")),
                Entry::Hold(_) => None,
            })
            .filter_map(|(found, state)| {
                let (type_, id, arn) = found.listed()?;
                Some(AwsResource {
                    component: component.name().to_owned(),
                    type_: type_.to_owned(),
                    id,
                    arn,
                    state: Some(state.to_owned()),
                })
            })
            .collect()
    }

    /// Deletes what the walk found, last declared first (or, under `Retain`,
    /// tags what keeps data as retained). Stops at a hold,
    /// returning its reason: what was declared before it must wait. Stops
    /// too, with nothing held, after deleting what AWS deletes later: the
    /// next round finds it going, or gone.
    pub async fn tear_down(&mut self) -> Result<Option<String>, ComponentError> {
        while let Some(entry) = self.entries.pop() {
            match entry {
                Entry::Hold(reason) => return Ok(Some(reason)),
                Entry::Kept(_) => {}
                Entry::Resource(found) => {
                    let mut change = Change::new(Action::Delete, found.label());
                    change.fields = found.delete_fields();
                    self.changes.push(change);
                    found
                        .delete(self.aws)
                        .await
                        .map_err(|err| err.concerning(|| found.label()))?;
                    if found.deleted_later() {
                        return Ok(None);
                    }
                }
                Entry::Retain(found, tags) => {
                    self.changes.push(retention(&found.label()));
                    found
                        .set_tags(self.aws, &tags)
                        .await
                        .map_err(|err| err.concerning(|| found.label()))?;
                }
            }
        }
        Ok(None)
    }
}

/// What a teardown does with a resource it found.
enum Fate {
    Delete,
    /// Kept under `Retain`, given these tags.
    Retag(Tags),
    /// Kept under `Retain`, and tagged so already.
    Kept,
}

fn fate<R: Resource>(policy: DeletionPolicy, desired: &R, observed: &R::Observed) -> Fate {
    let kept = policy == DeletionPolicy::Retain && R::KEEPS_DATA;
    let (true, Some(tags)) = (kept, desired.desired_tags()) else {
        return Fate::Delete;
    };
    let mut retained = tags.clone();
    retained.insert(RETAINED_TAG.to_owned(), "true".to_owned());
    if R::tags(observed) == Some(&retained) {
        Fate::Kept
    } else {
        Fate::Retag(retained)
    }
}

/// The change that marks `label` as retained.
fn retention(label: &str) -> Change {
    Change::new(Action::Update, format!("{label} tags")).field(RETAINED_TAG, "(absent)", "true")
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

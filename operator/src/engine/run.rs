//! Running the components: in dependency order to converge, in reverse order
//! to tear down.

use std::marker::PhantomData;
use std::sync::Arc;

use std::future::Future;

use futures::future::BoxFuture;

use crate::api::v1alpha1::{DeletionPolicy, ImagePipelineSpec};
use crate::aws::AwsClients;
use crate::aws::errors::classify;
use crate::engine::resource::{NotServing, Walk, WalkMode};
use crate::engine::{
    Change, ComponentError, ComponentKind, Outputs, Owner, PipelineContext, Readiness, fold_into_creates,
};

/// How often one pass re-observes and acts on a component before giving up
/// for this pass: AWS that does not reflect a change it accepted is reported,
/// not hammered.
const MAX_ROUNDS_PER_PASS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot identify the AWS account: {0}")]
    Identity(ComponentError),
}

/// Where a component stands after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentState {
    Ready,
    /// AWS is still working on it.
    Waiting(String),
    /// It exists, and a check of whether it does its job says it does not.
    NotServing(NotServing),
    /// `plan`: changes are pending.
    ChangesPending,
    /// Could not converge; see the error's kind.
    Failed(ComponentError),
    /// A component it depends on is not ready.
    Blocked(ComponentKind),
    /// Torn down (deleted, or marked retained under `Retain`).
    Removed,
}

#[derive(Clone, Debug)]
pub struct ComponentReport {
    pub kind: ComponentKind,
    pub state: ComponentState,
    /// Changes made (apply, destroy) or pending (plan).
    pub changes: Vec<Change>,
}

/// The outcome of one pass over every component.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    pub components: Vec<ComponentReport>,
    pub outputs: Outputs,
}

impl PassReport {
    pub fn is_ready(&self) -> bool {
        self.components.iter().all(|c| c.state == ComponentState::Ready)
    }

    pub fn is_removed(&self) -> bool {
        self.components.iter().all(|c| c.state == ComponentState::Removed)
    }

    /// The first error a retry cannot fix: a terminal one, or AWS refusing
    /// the caller.
    pub fn terminal_error(&self) -> Option<(ComponentKind, &ComponentError)> {
        self.components.iter().find_map(|c| match &c.state {
            ComponentState::Failed(err) if err.needs_person() => Some((c.kind, err)),
            _ => None,
        })
    }

    pub fn changes(&self) -> impl Iterator<Item = (ComponentKind, &Change)> {
        self.components
            .iter()
            .flat_map(|c| c.changes.iter().map(move |change| (c.kind, change)))
    }

    fn state_of(&self, kind: ComponentKind) -> Option<&ComponentState> {
        self.components.iter().find(|c| c.kind == kind).map(|c| &c.state)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Change AWS to match the spec.
    Apply,
    /// Report what apply would change; change nothing.
    Plan,
}

/// A component as the engine runs it, whatever its own types are. The
/// engine knows components only through this: the composition root
/// (`crate::pipeline`) hands it the list.
pub trait RunComponent: Send + Sync {
    fn kind(&self) -> ComponentKind;
    /// Components whose outputs this one needs.
    fn depends_on(&self) -> &'static [ComponentKind];
    /// Drives the component towards `goal`, recording the changes made (or,
    /// for a plan, pending).
    fn drive<'a>(
        &'a self,
        aws: &'a AwsClients,
        ctx: &'a PipelineContext,
        outputs: &'a mut Outputs,
        goal: Goal,
        changes: &'a mut Vec<Change>,
    ) -> BoxFuture<'a, Result<ComponentState, ComponentError>>;
}

/// A component made of resources: it declares them, in the order they are
/// made, to a [`Walk`], which creates, updates, finds or deletes them.
pub trait Declared: Send + Sync + 'static {
    const KIND: ComponentKind;
    /// Components whose outputs this one needs.
    const DEPENDS_ON: &'static [ComponentKind];

    type Desired: Send + Sync;

    /// Pure: what should exist, from the spec and the outputs of the
    /// components this one depends on.
    fn desired(ctx: &PipelineContext, upstream: &Outputs) -> Result<Self::Desired, ComponentError>;

    /// Declares each resource to `walk`, passing what earlier ones made to
    /// later ones, and puts what later components use into `outputs`.
    fn declare(
        walk: &mut Walk<'_>,
        desired: &Self::Desired,
        outputs: &mut Outputs,
    ) -> impl Future<Output = Result<(), ComponentError>> + Send;
}

/// A [`Declared`] component as the engine runs it.
pub fn declared<C: Declared>() -> Arc<dyn RunComponent> {
    Arc::new(Resources::<C>(PhantomData))
}

struct Resources<C>(PhantomData<fn() -> C>);

impl<C: Declared> RunComponent for Resources<C> {
    fn kind(&self) -> ComponentKind {
        C::KIND
    }

    fn depends_on(&self) -> &'static [ComponentKind] {
        C::DEPENDS_ON
    }

    fn drive<'a>(
        &'a self,
        aws: &'a AwsClients,
        ctx: &'a PipelineContext,
        outputs: &'a mut Outputs,
        goal: Goal,
        changes: &'a mut Vec<Change>,
    ) -> BoxFuture<'a, Result<ComponentState, ComponentError>> {
        Box::pin(walk::<C>(aws, ctx, outputs, goal, changes))
    }
}

/// Walks the component's resources until a walk finds nothing to change (or,
/// tearing down, nothing left), at most [`MAX_ROUNDS_PER_PASS`] times. The
/// last round only looks.
async fn walk<C: Declared>(
    aws: &AwsClients,
    ctx: &PipelineContext,
    outputs: &mut Outputs,
    goal: Goal,
    changes: &mut Vec<Change>,
) -> Result<ComponentState, ComponentError> {
    let desired = C::desired(ctx, outputs)?;
    let owner = ctx.owner.tag_value();
    for round in 0..=MAX_ROUNDS_PER_PASS {
        let last = round == MAX_ROUNDS_PER_PASS;
        let mode = match goal {
            Goal::Converge(Mode::Apply) if !last => WalkMode::Apply,
            Goal::Converge(_) => WalkMode::Plan,
            Goal::TearDown(_) => WalkMode::Find,
        };
        let mut walk = Walk::new(aws, owner.clone(), mode);
        if let Goal::TearDown(policy) = goal {
            walk = walk.under(policy);
        }
        let declared = C::declare(&mut walk, &desired, outputs).await;
        if declared.is_err() {
            // A failing component still shows what of it exists.
            outputs.resources.extend(walk.listed(C::KIND));
        }
        let made = walk.take_changes();
        let settled = || match (walk.readiness(), walk.serving_check()) {
            (Readiness::Waiting(reason), _) => ComponentState::Waiting(reason),
            (Readiness::Ready, Some(not_serving)) => ComponentState::NotServing(not_serving.clone()),
            (Readiness::Ready, None) => ComponentState::Ready,
        };
        match goal {
            Goal::Converge(Mode::Plan) => {
                declared?;
                outputs.resources.extend(walk.listed(C::KIND));
                if made.is_empty() {
                    return Ok(settled());
                }
                changes.extend(fold_into_creates(made));
                return Ok(ComponentState::ChangesPending);
            }
            Goal::Converge(Mode::Apply) => {
                let unchanged = made.is_empty();
                if !last {
                    changes.extend(made);
                }
                declared?;
                if unchanged {
                    outputs.resources.extend(walk.listed(C::KIND));
                    return Ok(settled());
                }
            }
            Goal::TearDown(_) => {
                declared?;
                if !walk.found_any() {
                    // What `Retain` keeps stays in the status.
                    outputs.resources.extend(walk.listed(C::KIND));
                    return Ok(ComponentState::Removed);
                }
                if last {
                    break;
                }
                let held = walk.tear_down().await;
                changes.extend(walk.take_changes());
                if let Some(reason) = held? {
                    outputs.resources.extend(walk.listed(C::KIND));
                    return Ok(ComponentState::Waiting(reason));
                }
            }
        }
    }
    Err(not_settled(C::KIND))
}

/// The reconcile engine: AWS clients plus the components, in the order they
/// are created.
#[derive(Clone)]
pub struct Engine {
    aws: AwsClients,
    components: Arc<[Arc<dyn RunComponent>]>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<ComponentKind> = self.components.iter().map(|c| c.kind()).collect();
        f.debug_struct("Engine").field("components", &kinds).finish()
    }
}

impl Engine {
    pub fn new(aws: AwsClients, components: Vec<Arc<dyn RunComponent>>) -> Self {
        Self {
            aws,
            components: components.into(),
        }
    }

    pub fn aws(&self) -> &AwsClients {
        &self.aws
    }

    /// Resolves the account the credentials belong to: resource names and
    /// ARNs depend on it.
    pub async fn context(
        &self,
        owner: Owner,
        spec: ImagePipelineSpec,
    ) -> Result<PipelineContext, EngineError> {
        let identity = self.aws.sts.get_caller_identity().send().await.map_err(|err| {
            EngineError::Identity(classify("look up the AWS account (sts:GetCallerIdentity)", err))
        })?;
        let account = identity.account().unwrap_or_default().to_owned();
        Ok(PipelineContext::new(owner, account, spec))
    }

    /// One pass that converges every component, in dependency order.
    pub async fn apply(&self, ctx: &PipelineContext) -> PassReport {
        self.converge_all(ctx, Mode::Apply).await
    }

    /// What `apply` would change, changing nothing.
    pub async fn plan(&self, ctx: &PipelineContext) -> PassReport {
        self.converge_all(ctx, Mode::Plan).await
    }

    /// One pass that tears components down in reverse dependency order,
    /// honouring `spec.deletionPolicy`. It stops at the first component that
    /// is not gone yet: what it stands on must wait.
    pub async fn destroy(&self, ctx: &PipelineContext) -> PassReport {
        let goal = Goal::TearDown(ctx.spec.deletion_policy);
        let mut report = PassReport::default();
        for component in self.components.iter().rev() {
            let blocker = report
                .components
                .iter()
                .find(|c| c.state != ComponentState::Removed);
            let component = match blocker {
                Some(blocker) => ComponentReport::blocked(component.kind(), blocker.kind),
                None => self.run(component.as_ref(), ctx, &mut report.outputs, goal).await,
            };
            report.components.push(component);
        }
        report.components.reverse();
        report
    }

    async fn converge_all(&self, ctx: &PipelineContext, mode: Mode) -> PassReport {
        let mut report = PassReport::default();
        for component in self.components.iter() {
            // A plan looks past dependencies that do not exist yet, so it can
            // show everything a first apply would make.
            let unready = component
                .depends_on()
                .iter()
                .copied()
                .find(|&dep| report.state_of(dep) != Some(&ComponentState::Ready));
            let component = match unready {
                Some(dependency) if mode == Mode::Apply => {
                    ComponentReport::blocked(component.kind(), dependency)
                }
                _ => {
                    self.run(component.as_ref(), ctx, &mut report.outputs, Goal::Converge(mode))
                        .await
                }
            };
            report.components.push(component);
        }
        report
    }

    async fn run(
        &self,
        component: &dyn RunComponent,
        ctx: &PipelineContext,
        outputs: &mut Outputs,
        goal: Goal,
    ) -> ComponentReport {
        let mut changes = Vec::new();
        let state = component
            .drive(&self.aws, ctx, outputs, goal, &mut changes)
            .await
            .unwrap_or_else(ComponentState::Failed);
        ComponentReport {
            kind: component.kind(),
            state,
            changes,
        }
    }
}

/// What a pass drives each component towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    Converge(Mode),
    TearDown(DeletionPolicy),
}

impl ComponentReport {
    fn blocked(kind: ComponentKind, on: ComponentKind) -> Self {
        Self {
            kind,
            state: ComponentState::Blocked(on),
            changes: vec![],
        }
    }
}

fn not_settled(kind: ComponentKind) -> ComponentError {
    ComponentError::retryable(
        "NotSettled",
        format!(
            "{kind}: AWS accepted every change but still reports differences after \
             {MAX_ROUNDS_PER_PASS} rounds; the next reconcile tries again"
        ),
    )
}

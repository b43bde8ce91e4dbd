//! Running the components: in dependency order to converge, in reverse order
//! to tear down.

use crate::api::v1alpha1::{DeletionPolicy, ImagePipelineSpec};
use crate::aws::AwsClients;
use crate::aws::errors::classify;
use crate::components::{Analytics, Delivery, KafkaBrokers, Metadata, Network, Storage, UploadTier};
use crate::engine::{
    Change, Component, ComponentError, ComponentKind, Outputs, Owner, PipelineContext, Readiness,
    fold_into_creates,
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

/// The reconcile engine: AWS clients plus the order of the components.
#[derive(Clone, Debug)]
pub struct Engine {
    aws: AwsClients,
}

impl Engine {
    pub fn new(aws: AwsClients) -> Self {
        Self { aws }
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
        for kind in ComponentKind::ALL.into_iter().rev() {
            let blocker = report
                .components
                .iter()
                .find(|c| c.state != ComponentState::Removed);
            let component = match blocker {
                Some(blocker) => ComponentReport::blocked(kind, blocker.kind),
                None => self.run(kind, ctx, &mut report.outputs, goal).await,
            };
            report.components.push(component);
        }
        report.components.reverse();
        report
    }

    async fn converge_all(&self, ctx: &PipelineContext, mode: Mode) -> PassReport {
        let mut report = PassReport::default();
        for kind in ComponentKind::ALL {
            // A plan looks past dependencies that do not exist yet, so it can
            // show everything a first apply would make.
            let unready = Self::dependencies(kind)
                .iter()
                .copied()
                .find(|&dep| report.state_of(dep) != Some(&ComponentState::Ready));
            let component = match unready {
                Some(dependency) if mode == Mode::Apply => ComponentReport::blocked(kind, dependency),
                _ => {
                    self.run(kind, ctx, &mut report.outputs, Goal::Converge(mode))
                        .await
                }
            };
            report.components.push(component);
        }
        report
    }

    fn dependencies(kind: ComponentKind) -> &'static [ComponentKind] {
        match kind {
            ComponentKind::Network => Network::DEPENDS_ON,
            ComponentKind::Storage => Storage::DEPENDS_ON,
            ComponentKind::Metadata => Metadata::DEPENDS_ON,
            ComponentKind::Delivery => Delivery::DEPENDS_ON,
            ComponentKind::UploadTier => UploadTier::DEPENDS_ON,
            ComponentKind::Kafka => KafkaBrokers::DEPENDS_ON,
            ComponentKind::Analytics => Analytics::DEPENDS_ON,
        }
    }

    async fn run(
        &self,
        kind: ComponentKind,
        ctx: &PipelineContext,
        outputs: &mut Outputs,
        goal: Goal,
    ) -> ComponentReport {
        match kind {
            ComponentKind::Network => self.run_component::<Network>(ctx, outputs, goal).await,
            ComponentKind::Storage => self.run_component::<Storage>(ctx, outputs, goal).await,
            ComponentKind::Metadata => self.run_component::<Metadata>(ctx, outputs, goal).await,
            ComponentKind::Delivery => self.run_component::<Delivery>(ctx, outputs, goal).await,
            ComponentKind::UploadTier => self.run_component::<UploadTier>(ctx, outputs, goal).await,
            ComponentKind::Kafka => self.run_component::<KafkaBrokers>(ctx, outputs, goal).await,
            ComponentKind::Analytics => self.run_component::<Analytics>(ctx, outputs, goal).await,
        }
    }

    async fn run_component<C: Component>(
        &self,
        ctx: &PipelineContext,
        outputs: &mut Outputs,
        goal: Goal,
    ) -> ComponentReport {
        let mut changes = Vec::new();
        let state = self
            .drive::<C>(ctx, outputs, goal, &mut changes)
            .await
            .unwrap_or_else(ComponentState::Failed);
        ComponentReport {
            kind: C::KIND,
            state,
            changes,
        }
    }

    /// Observes, acts on the steps towards `goal`, and observes again, until
    /// no steps remain or the rounds run out.
    async fn drive<C: Component>(
        &self,
        ctx: &PipelineContext,
        outputs: &mut Outputs,
        goal: Goal,
        changes: &mut Vec<Change>,
    ) -> Result<ComponentState, ComponentError> {
        let desired = C::desired(ctx, outputs)?;
        let mut observed = C::observe(&self.aws, &desired).await?;
        for round in 0..=MAX_ROUNDS_PER_PASS {
            let (steps, settled) = match goal {
                Goal::Converge(_) => {
                    let settled = match C::readiness(&desired, &observed) {
                        Readiness::Ready => ComponentState::Ready,
                        Readiness::Waiting(reason) => ComponentState::Waiting(reason),
                    };
                    (C::converge(&desired, &observed)?, settled)
                }
                Goal::TearDown(policy) => {
                    let (steps, waiting) = C::teardown(&desired, &observed, policy);
                    (
                        steps,
                        waiting.map_or(ComponentState::Removed, ComponentState::Waiting),
                    )
                }
            };
            if steps.is_empty() {
                C::publish(&desired, &observed, outputs);
                return Ok(settled);
            }
            if round == MAX_ROUNDS_PER_PASS {
                break;
            }
            if goal == Goal::Converge(Mode::Plan) {
                changes.extend(fold_into_creates(
                    steps.iter().map(|step| C::describe(&desired, step)).collect(),
                ));
                C::publish(&desired, &observed, outputs);
                return Ok(ComponentState::ChangesPending);
            }
            for step in &steps {
                changes.push(C::describe(&desired, step));
                C::execute(&self.aws, &desired, &mut observed, step).await?;
            }
            observed = C::observe(&self.aws, &desired).await?;
        }
        Err(not_settled(C::KIND))
    }
}

/// What a pass drives each component towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
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

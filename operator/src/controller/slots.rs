//! Which due reconciles run when more are due than `--concurrency` allows:
//! the ones that became due first.
//!
//! kube-runtime's own limit (`controller::Config::concurrency`) keeps the
//! reconciles it cannot start yet in a hash set, and starts the first one it
//! finds there whenever a slot frees. Under sustained load the set is never
//! empty, so the same pipelines are found first every time and the others
//! wait for as long as the load lasts: in the scale bench, 100 pipelines
//! coming up (each back every few seconds while AWS builds it) left 25 of them
//! without a single reconcile after their finalizer for 20 minutes. So the
//! controller runs without kube-runtime's limit, and each reconcile first
//! waits here for a slot of a fair (first come, first served) semaphore: a
//! due reconcile waits behind at most those that were due before it.
//!
//! A reconcile that waited works on the latest version of its object, not on
//! the one it was due with, and one that is still waiting when the controller
//! shuts down gives up instead of starting.

use std::sync::Arc;
use std::time::Instant;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many reconciles run at once, and who waits.
pub struct Slots<K: Resource<DynamicType = ()> + Clone + 'static> {
    slots: Arc<Semaphore>,
    latest: Store<K>,
    waiting: Gauge,
    waited: Histogram,
}

/// The right to reconcile one object, held for the reconcile.
pub struct Slot<K> {
    pub object: Arc<K>,
    _slot: OwnedSemaphorePermit,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Slots<K> {
    /// `concurrency` reconciles at once; `latest` is the controller's store
    /// of the objects; `waiting` and `waited` are the metrics of the
    /// reconciles that wait for a slot.
    pub fn new(concurrency: u16, latest: Store<K>, waiting: Gauge, waited: Histogram) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(usize::from(concurrency.max(1)))),
            latest,
            waiting,
            waited,
        }
    }

    /// Waits for a slot, in the order reconciles became due, then gives the
    /// latest version of `object`. `None` when the object is gone from the
    /// store or the controller is shutting down: nothing to reconcile.
    pub async fn wait_turn(&self, object: &K) -> Option<Slot<K>> {
        let due = Instant::now();
        let slot = {
            // Counted while waiting, also when the wait is dropped.
            let _waiting = Waiting::on(&self.waiting);
            Arc::clone(&self.slots).acquire_owned().await
        };
        self.waited.observe(due.elapsed().as_secs_f64());
        let slot = slot.ok()?;
        let object = self.latest.get(&ObjectRef::from_obj(object))?;
        Some(Slot { object, _slot: slot })
    }

    /// Shutdown: reconciles still waiting give up; running ones finish.
    pub fn close(&self) {
        self.slots.close();
    }
}

/// One reconcile in the `waiting` gauge, for as long as it lives.
struct Waiting<'a>(&'a Gauge);

impl<'a> Waiting<'a> {
    fn on(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use futures::{FutureExt, StreamExt, stream};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::controller::{self, Action, applier};
    use kube::runtime::reflector::{self, ObjectRef, store::Writer};
    use kube::runtime::watcher;

    use super::*;

    const OBJECTS: usize = 40;
    const CONCURRENCY: u16 = 4;
    /// A reconcile's length, and how soon each object is due again: always
    /// more due than can run, as with 100 pipelines coming up.
    const RECONCILE: Duration = Duration::from_millis(100);
    const BACK_AFTER: Duration = Duration::from_millis(50);

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    fn store_of(count: usize) -> (Store<ConfigMap>, Writer<ConfigMap>, Vec<ObjectRef<ConfigMap>>) {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        writer.apply_watcher_event(&watcher::Event::Init);
        let mut refs = vec![];
        for n in 0..count {
            let mut object = ConfigMap::default();
            object.metadata.name = Some(format!("p{n:03}"));
            object.metadata.namespace = Some("scale".into());
            refs.push(ObjectRef::from_obj(&object));
            writer.apply_watcher_event(&watcher::Event::InitApply(object));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        (reader, writer, refs)
    }

    /// Runs every object through kube-runtime's applier under constant
    /// load for `run_for`, with the slots either kube-runtime's or ours, and
    /// counts the reconciles each object got.
    async fn reconciles_under_load(ours: bool, run_for: Duration) -> BTreeMap<String, u32> {
        let (reader, _writer, refs) = store_of(OBJECTS);
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let slots = Arc::new(Slots::new(
            CONCURRENCY,
            reader.clone(),
            Gauge::default(),
            Histogram::new([1.0]),
        ));
        let config = if ours {
            controller::Config::default()
        } else {
            controller::Config::default().concurrency(CONCURRENCY)
        };
        let queue = stream::iter(refs.into_iter().map(Ok::<_, Never>)).chain(stream::pending());
        let reconcile = {
            let counts = Arc::clone(&counts);
            move |object: Arc<ConfigMap>, _: Arc<()>| {
                let counts = Arc::clone(&counts);
                let slots = Arc::clone(&slots);
                async move {
                    let slot = if ours {
                        slots.wait_turn(&object).await
                    } else {
                        None
                    };
                    let object = slot.as_ref().map_or(object, |a| Arc::clone(&a.object));
                    *counts
                        .lock()
                        .unwrap()
                        .entry(object.metadata.name.clone().unwrap_or_default())
                        .or_insert(0) += 1;
                    tokio::time::sleep(RECONCILE).await;
                    Ok::<_, Never>(Action::requeue(BACK_AFTER))
                }
                .boxed()
            }
        };
        let run = applier(
            reconcile,
            |_, _: &Never, _| Action::await_change(),
            Arc::new(()),
            reader,
            queue,
            config,
        )
        .for_each(|_| async {});
        let _ = tokio::time::timeout(run_for, run).await;
        counts.lock().unwrap().clone()
    }

    /// Time enough for every object to be reconciled twice, were they taken
    /// in turn.
    fn two_turns() -> Duration {
        RECONCILE * 2 * (OBJECTS as u32) / u32::from(CONCURRENCY) + Duration::from_millis(500)
    }

    #[tokio::test(start_paused = true)]
    async fn under_constant_load_every_due_object_is_reconciled_in_turn() {
        let counts = reconciles_under_load(true, two_turns()).await;
        assert_eq!(counts.len(), OBJECTS, "objects never reconciled: {counts:?}");
        let fewest = counts.values().min().copied().unwrap_or(0);
        let most = counts.values().max().copied().unwrap_or(0);
        assert!(
            fewest >= 1 && most - fewest <= 1,
            "reconciles per object should differ by one at most: {counts:?}"
        );
    }

    /// Why [`Slots`] exists: kube-runtime's limit alone starves objects
    /// under the same load. Should kube-runtime start due reconciles in
    /// turn, this fails, and the controller can use its limit again.
    #[tokio::test(start_paused = true)]
    async fn kube_runtimes_own_limit_leaves_objects_unreconciled_under_constant_load() {
        let counts = reconciles_under_load(false, two_turns()).await;
        assert!(
            counts.len() < OBJECTS,
            "kube-runtime reconciled every object in turn; its concurrency limit may replace Slots now: {counts:?}"
        );
    }

    #[tokio::test]
    async fn a_reconcile_that_waited_sees_the_latest_object_and_one_still_waiting_at_shutdown_gives_up() {
        let (reader, mut writer, refs) = store_of(3);
        let slots = Slots::new(1, reader.clone(), Gauge::default(), Histogram::new([1.0]));
        let [first, second, third] = [0, 1, 2].map(|n| reader.get(&refs[n]).unwrap());
        let running = slots.wait_turn(&first).await.expect("a free slot");
        let waiting = slots.wait_turn(&second);
        futures::pin_mut!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "the only slot is taken"
        );
        assert_eq!(slots.waiting.get(), 1);

        let mut changed = (*second).clone();
        changed.data = Some([("spec".to_owned(), "changed while waiting".to_owned())].into());
        writer.apply_watcher_event(&watcher::Event::Apply(changed.clone()));
        drop(running);
        let slot = waiting.await.expect("the slot was freed");
        assert_eq!(*slot.object, changed);

        let at_shutdown = slots.wait_turn(&third);
        futures::pin_mut!(at_shutdown);
        assert!(futures::poll!(at_shutdown.as_mut()).is_pending());
        slots.close();
        assert!(
            at_shutdown.await.is_none(),
            "shutdown: the waiting reconcile gives up"
        );
        assert_eq!(slots.waiting.get(), 0);
        drop(slot);
    }

    #[tokio::test]
    async fn an_object_deleted_while_its_reconcile_waited_is_not_reconciled() {
        let (reader, mut writer, refs) = store_of(2);
        let slots = Slots::new(1, reader.clone(), Gauge::default(), Histogram::new([1.0]));
        let [first, second] = [0, 1].map(|n| reader.get(&refs[n]).unwrap());
        let running = slots.wait_turn(&first).await.expect("a free slot");
        let waiting = slots.wait_turn(&second);
        futures::pin_mut!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        writer.apply_watcher_event(&watcher::Event::Delete((*second).clone()));
        drop(running);
        assert!(waiting.await.is_none());
    }
}

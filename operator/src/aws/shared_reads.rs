//! Reads that answer for every pipeline of a region at once. A `Describe*`
//! filtered by the owner tag's key returns the objects of all pipelines; one
//! operator running 100 pipelines makes it once and each pipeline picks its
//! own out of the answer, instead of 100 describes that each return one. The
//! per-pipeline answer stays exact: picking is done with the same tags and
//! names the per-pipeline filters used.
//!
//! An answer is reused only while it cannot hide a change the operator made:
//! any mutating call through these clients (counted by the call log when it
//! starts and again when it ends) makes every answer read before it stale, so
//! a walk that changed something reads afresh, and a pipeline being built
//! never sees an answer from before its last change. With nothing changing,
//! as in a steady-state round, an answer serves for [`MAX_AGE`]: a change made
//! outside the operator (drift) is seen at most that much later, by every
//! pipeline it concerns.
//!
//! While the operator is changing things (pipelines being built or torn
//! down), a list of everything would be stale again after the next change,
//! and reading it for each find would cost more than the narrow read it
//! replaces. So until it has been [`QUIET`] for a moment, a find without a
//! current answer makes its own narrow read instead, as it would alone.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::calls::CallLog;
use crate::error::ComponentError;

/// How long an answer serves while the operator changes nothing. A pipeline is
/// re-checked every few minutes, so this is far shorter than the time drift
/// waits for its next check anyway.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// How long the operator must have changed nothing before a read is shared.
pub const QUIET: Duration = Duration::from_secs(10);

/// How long an answer that no call of the operator can change (an AMI, the
/// zones offering an instance type) serves. AWS changes those rarely (a new
/// Amazon Linux AMI a few times a month), and bringing pipelines up
/// otherwise read them again after every change the operator made: 10 of
/// the 130 EC2 calls of a pipeline's bring-up.
pub const FACTS_MAX_AGE: Duration = Duration::from_secs(600);

type Answer = Arc<dyn Any + Send + Sync>;

/// The type is part of the key, so an answer always downcasts.
fn typed_key<T: Any>(key: &str) -> String {
    format!("{key}:{}", std::any::type_name::<T>())
}

struct Entry {
    /// The call log's mutation epoch when the read was asked for.
    epoch: u64,
    asked: Instant,
    answer: OnceCell<Answer>,
}

/// Shared by every pipeline using one region's clients; cheap to clone.
#[derive(Clone)]
pub struct SharedReads {
    /// The call log whose mutations make answers stale; none for facts.
    calls: Option<CallLog>,
    max_age: Duration,
    entries: Arc<Mutex<HashMap<String, Arc<Entry>>>>,
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl SharedReads {
    pub fn new(calls: CallLog, max_age: Duration) -> Self {
        Self {
            calls: Some(calls),
            max_age,
            entries: Arc::default(),
        }
    }

    /// Reads of what no call of the operator changes: an answer serves for
    /// `max_age`, whatever the operator does meanwhile.
    pub fn of_facts(max_age: Duration) -> Self {
        Self {
            calls: None,
            max_age,
            entries: Arc::default(),
        }
    }

    /// The mutation epoch answers are current for (always 0 for facts).
    fn epoch(&self) -> u64 {
        self.calls.as_ref().map_or(0, CallLog::mutation_epoch)
    }

    /// The answer of `read` under `key`: a current one if there is one (or
    /// one being read right now, which is waited for), else a new read.
    /// Concurrent callers of one key make one call between them.
    pub async fn get<T, Read, Reading>(&self, key: &str, read: Read) -> Result<Arc<T>, ComponentError>
    where
        T: Any + Send + Sync,
        Read: FnOnce() -> Reading,
        Reading: Future<Output = Result<T, ComponentError>>,
    {
        let entry = self.current(typed_key::<T>(key));
        let answer = entry
            .answer
            .get_or_try_init(|| async { read().await.map(|value| Arc::new(value) as Answer) })
            .await?;
        Arc::clone(answer).downcast::<T>().map_err(|_| {
            ComponentError::terminal(
                "InternalError",
                "a shared AWS read answered with another type; report this as a bug",
            )
        })
    }

    /// Like [`Self::get`], except that while the operator is not
    /// [`QUIET`] and there is no current answer, `narrow` answers instead,
    /// just for this caller: a read of only what the caller needs, whose
    /// answer the caller filters the same way.
    pub async fn get_or_narrow<T, Read, Reading, Narrow, NarrowReading>(
        &self,
        key: &str,
        read: Read,
        narrow: Narrow,
    ) -> Result<Arc<T>, ComponentError>
    where
        T: Any + Send + Sync,
        Read: FnOnce() -> Reading,
        Reading: Future<Output = Result<T, ComponentError>>,
        Narrow: FnOnce() -> NarrowReading,
        NarrowReading: Future<Output = Result<T, ComponentError>>,
    {
        let busy = self
            .calls
            .as_ref()
            .and_then(CallLog::since_last_mutation)
            .is_some_and(|since| since < QUIET);
        if busy && !self.has_current(&typed_key::<T>(key)) {
            return narrow().await.map(Arc::new);
        }
        self.get(key, read).await
    }

    fn has_current(&self, key: &str) -> bool {
        let epoch = self.epoch();
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .is_some_and(|entry| entry.epoch == epoch && entry.asked.elapsed() < self.max_age)
    }

    fn current(&self, key: String) -> Arc<Entry> {
        let epoch = self.epoch();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Nothing else removes entries: drop the stale ones as we go.
        entries.retain(|_, entry| entry.epoch == epoch && entry.asked.elapsed() < self.max_age);
        Arc::clone(entries.entry(key).or_insert_with(|| {
            Arc::new(Entry {
                epoch,
                asked: Instant::now(),
                answer: OnceCell::new(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::aws::calls::Outcome;

    async fn counted(reads: &SharedReads, key: &str, count: &AtomicU32) -> u32 {
        *reads
            .get::<u32, _, _>(key, || async { Ok(count.fetch_add(1, Ordering::SeqCst) + 1) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn concurrent_and_later_callers_share_one_read_until_something_changes() {
        let calls = CallLog::new();
        let reads = SharedReads::new(calls.clone(), MAX_AGE);
        let count = AtomicU32::new(0);
        let answers =
            futures::future::join_all((0..50).map(|_| counted(&reads, "DescribeVpcs", &count))).await;
        assert!(answers.iter().all(|&n| n == 1), "{answers:?}");
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 1);
        assert_eq!(
            counted(&reads, "DescribeSubnets", &count).await,
            2,
            "another key is another read"
        );

        // A read is never an answer to a question asked after a change.
        calls.note_mutation("CreateVpc");
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 3);
        calls.record("ec2", "CreateVpc", Outcome::Success).unwrap();
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 4);
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 4);
        // Reads change nothing.
        calls.note_mutation("DescribeVpcs");
        calls.record("ec2", "DescribeVpcs", Outcome::Success).unwrap();
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 4);
    }

    #[tokio::test]
    async fn an_answer_expires_and_a_failed_read_is_not_kept() {
        let reads = SharedReads::new(CallLog::new(), Duration::from_millis(50));
        let count = AtomicU32::new(0);
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(counted(&reads, "DescribeVpcs", &count).await, 2);

        let failed = reads
            .get::<u32, _, _>("DescribeInstances", || async {
                Err(ComponentError::retryable("Throttling", "slow down"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(counted(&reads, "DescribeInstances", &count).await, 3);
    }

    #[tokio::test]
    async fn facts_serve_across_the_operators_changes_until_they_expire() {
        let facts = SharedReads::of_facts(Duration::from_millis(80));
        let count = AtomicU32::new(0);
        assert_eq!(counted(&facts, "DescribeImages", &count).await, 1);
        assert_eq!(counted(&facts, "DescribeImages", &count).await, 1);
        tokio::time::sleep(Duration::from_millis(90)).await;
        assert_eq!(counted(&facts, "DescribeImages", &count).await, 2);
    }

    #[tokio::test]
    async fn while_the_operator_changes_things_a_find_reads_narrowly_unless_an_answer_is_current() {
        let calls = CallLog::new();
        let reads = SharedReads::new(calls.clone(), MAX_AGE);
        let read = |what: &'static str| async move { Ok::<_, ComponentError>(what) };
        let quiet = reads.get_or_narrow("DescribeVpcs", || read("shared"), || read("narrow"));
        assert_eq!(*quiet.await.unwrap(), "shared", "nothing changed yet: shared");

        calls.note_mutation("CreateVpc");
        let busy = reads.get_or_narrow("DescribeVpcs", || read("shared"), || read("narrow"));
        assert_eq!(
            *busy.await.unwrap(),
            "narrow",
            "the shared answer is stale, and would soon be again"
        );
        assert_eq!(
            *reads.get("DescribeVpcs", || read("shared again")).await.unwrap(),
            "shared again"
        );
        let current = reads.get_or_narrow("DescribeVpcs", || read("shared"), || read("narrow"));
        assert_eq!(
            *current.await.unwrap(),
            "shared again",
            "a current answer serves even while busy"
        );
    }
}

//! Memory that images arriving at once share: an image that gets a share is
//! held in memory until it is stored, one that does not goes to the spool
//! directory. Writing an image to a file and reading it back twice (to check
//! it, then to send it) cost more CPU than the checks themselves for a 1 MiB
//! PNG (measured: docs/benchmarks.md), so memory is used first; the share
//! bounds what a full house of uploads holds, whatever their number.
//!
//! An image that declared its length may wait for its share (see
//! [`SpoolMemory::wait_for`]): when many large images arrive at once, the
//! share is taken by images being checked and stored, which return it
//! within milliseconds, and waiting for it costs less than the disk. Memory
//! held by slow clients is not returned soon, and then the image goes to a
//! file after all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default share: 64 uploads of 1 MiB at once.
pub const SPOOL_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// How long an image waits for its share while no image returns memory:
/// images being checked and stored return theirs within milliseconds (a
/// 16 MiB PNG in about 30 ms of CPU, plus its PutObject), slow clients hold
/// theirs until they finish.
pub const SPOOL_MEMORY_PATIENCE: Duration = Duration::from_millis(500);

/// Memory shared by the images arriving at once, in KiB.
#[derive(Clone, Debug)]
pub struct SpoolMemory {
    kib: Arc<Semaphore>,
    /// The whole share, in KiB: an image needing more never waits for it.
    capacity_kib: usize,
    /// How many times an image has returned its memory.
    returns: Arc<AtomicU64>,
    /// How long [`SpoolMemory::wait_for`] waits without a return.
    patience: Duration,
    /// Where the time each wait took is counted, if anywhere.
    waits: Option<Histogram>,
}

/// Memory lent to one image; returned when dropped.
#[derive(Debug)]
pub struct Lent {
    permit: OwnedSemaphorePermit,
    returns: Arc<AtomicU64>,
}

impl Lent {
    pub fn bytes(&self) -> u64 {
        self.permit.num_permits() as u64 * 1024
    }

    /// Adds `more` to what this image holds.
    fn merge(&mut self, mut more: Lent) {
        if let Some(permit) = more.permit.split(more.permit.num_permits()) {
            self.permit.merge(permit);
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.permit.num_permits() > 0 {
            self.returns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl SpoolMemory {
    pub fn new(bytes: u64) -> Self {
        let kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            kib: Arc::new(Semaphore::new(kib)),
            capacity_kib: kib,
            returns: Arc::default(),
            patience: SPOOL_MEMORY_PATIENCE,
            waits: None,
        }
    }

    /// Counts in `waits` the seconds each image waited for its share,
    /// whether it got it or not (images that found it free are not counted).
    pub fn with_waits_observed_in(self, waits: Histogram) -> Self {
        Self {
            waits: Some(waits),
            ..self
        }
    }

    /// Waits `patience` without a return before an image goes to a file.
    pub fn with_patience(self, patience: Duration) -> Self {
        Self { patience, ..self }
    }

    fn lent(&self, permit: OwnedSemaphorePermit) -> Lent {
        Lent {
            permit,
            returns: Arc::clone(&self.returns),
        }
    }

    /// `bytes` of memory if they are free now; never waits, since an image
    /// that finds none goes to a file instead.
    fn lend(&self, bytes: u64) -> Option<Lent> {
        let kib = u32::try_from(bytes.div_ceil(1024)).ok()?.max(1);
        let permit = Arc::clone(&self.kib).try_acquire_many_owned(kib).ok()?;
        Some(self.lent(permit))
    }

    /// `bytes` of memory: at once if they are free, else waiting for them
    /// in turn as long as images keep returning what they hold; none once
    /// the patience passed without a return (the memory is held by slow
    /// uploads), and none at once if the whole share is smaller.
    pub async fn wait_for(&self, bytes: u64) -> Option<Lent> {
        let kib = u32::try_from(bytes.div_ceil(1024)).ok()?.max(1);
        if kib as usize > self.capacity_kib {
            return None;
        }
        if let Some(free) = self.lend(bytes) {
            return Some(free);
        }
        let started = tokio::time::Instant::now();
        // One future throughout, so the image keeps its place in the queue.
        let acquire = Arc::clone(&self.kib).acquire_many_owned(kib);
        tokio::pin!(acquire);
        let lent = loop {
            let returns = self.returns.load(Ordering::Relaxed);
            match tokio::time::timeout(self.patience, &mut acquire).await {
                Ok(permit) => break permit.ok().map(|permit| self.lent(permit)),
                Err(_) if self.returns.load(Ordering::Relaxed) == returns => break None,
                Err(_) => {}
            }
        };
        if let Some(waits) = &self.waits {
            waits.observe(started.elapsed().as_secs_f64());
        }
        lent
    }

    /// Grows `lent` to at least `bytes`, or leaves it as it is and answers
    /// false when the memory is not free.
    pub fn grow(&self, lent: &mut Option<Lent>, bytes: u64) -> bool {
        let held = lent.as_ref().map_or(0, Lent::bytes);
        if held >= bytes {
            return true;
        }
        let Some(more) = self.lend(bytes - held) else {
            return false;
        };
        match lent {
            Some(lent) => lent.merge(more),
            None => *lent = Some(more),
        }
        true
    }

    /// Bytes not lent now.
    pub fn available(&self) -> u64 {
        self.kib.available_permits() as u64 * 1024
    }
}

impl Default for SpoolMemory {
    fn default() -> Self {
        Self::new(SPOOL_MEMORY_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_lent_while_it_lasts_and_returns_when_dropped() {
        let memory = SpoolMemory::new(3 * 1024 * 1024);
        let mut first = None;
        assert!(memory.grow(&mut first, 1024 * 1024));
        assert!(memory.grow(&mut first, 2 * 1024 * 1024 + 1));
        assert_eq!(first.as_ref().unwrap().bytes(), 2 * 1024 * 1024 + 1024);
        let mut second = None;
        assert!(!memory.grow(&mut second, 1024 * 1024), "less than 1 MiB is left");
        assert!(second.is_none());
        assert!(memory.grow(&mut second, 512 * 1024));
        drop(first);
        assert_eq!(memory.available(), 3 * 1024 * 1024 - 512 * 1024);
    }

    const MIB: u64 = 1024 * 1024;

    /// Waits for `bytes` in a task of its own, as an arriving image does.
    fn waiting(memory: &SpoolMemory, bytes: u64) -> tokio::task::JoinHandle<Option<Lent>> {
        let memory = memory.clone();
        tokio::spawn(async move { memory.wait_for(bytes).await })
    }

    #[tokio::test(start_paused = true)]
    async fn an_image_waits_for_its_share_while_images_return_theirs() {
        let memory = SpoolMemory::new(3 * MIB).with_patience(Duration::from_millis(500));
        let (mut large, mut small) = (None, None);
        assert!(memory.grow(&mut large, 2 * MIB));
        assert!(memory.grow(&mut small, MIB));
        let started = tokio::time::Instant::now();
        let waiter = waiting(&memory, 2 * MIB);
        // A return within the patience, though not enough, starts it again…
        tokio::time::sleep(Duration::from_millis(400)).await;
        drop(small);
        // …so the waiter is still there when the rest comes, 800 ms in.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!waiter.is_finished());
        drop(large);
        let lent = waiter.await.unwrap().expect("the share, once returned");
        assert_eq!(lent.bytes(), 2 * MIB);
        assert_eq!(started.elapsed(), Duration::from_millis(800));
        assert_eq!(memory.available(), MIB);
    }

    #[tokio::test(start_paused = true)]
    async fn an_image_stops_waiting_once_nothing_is_returned_for_the_patience() {
        let waits = Histogram::new([0.1, 1.0]);
        let memory = SpoolMemory::new(3 * MIB)
            .with_patience(Duration::from_millis(500))
            .with_waits_observed_in(waits.clone());
        let mut held = None;
        assert!(memory.grow(&mut held, 2 * MIB));
        let started = tokio::time::Instant::now();
        assert!(waiting(&memory, 2 * MIB).await.unwrap().is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(memory.available(), MIB, "a waiter gone keeps nothing");
        // More than the whole share is never waited for.
        let started = tokio::time::Instant::now();
        assert!(waiting(&memory, 4 * MIB).await.unwrap().is_none());
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Memory free now is lent at once.
        assert_eq!(waiting(&memory, MIB).await.unwrap().unwrap().bytes(), MIB);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("waits", "", waits);
        let text = crate::service::metrics_text(&registry);
        assert!(
            text.contains("waits_sum 0.5\n") && text.contains("waits_count 1\n"),
            "the one wait, and only it, is counted: {text}"
        );
    }
}

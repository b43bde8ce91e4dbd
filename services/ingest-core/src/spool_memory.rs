//! Memory that images arriving at once share: an image that gets a share is
//! held in memory until it is stored, one that does not goes to the spool
//! directory. Writing an image to a file and reading it back twice (to check
//! it, then to send it) cost more CPU than the checks themselves for a 1 MiB
//! PNG (measured: docs/benchmarks.md), so memory is used first; the share
//! bounds what a full house of uploads holds, whatever their number.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default share: 64 uploads of 1 MiB at once.
pub const SPOOL_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// Memory shared by the images arriving at once, in KiB.
#[derive(Clone, Debug)]
pub struct SpoolMemory {
    kib: Arc<Semaphore>,
}

/// Memory lent to one image; returned when dropped.
#[derive(Debug)]
pub struct Lent {
    permit: OwnedSemaphorePermit,
}

impl Lent {
    pub fn bytes(&self) -> u64 {
        self.permit.num_permits() as u64 * 1024
    }

    /// Adds `more` to what this image holds.
    fn merge(&mut self, more: Lent) {
        self.permit.merge(more.permit);
    }
}

impl SpoolMemory {
    pub fn new(bytes: u64) -> Self {
        let kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self {
            kib: Arc::new(Semaphore::new(kib)),
        }
    }

    /// `bytes` of memory if they are free now; never waits, since an image
    /// that finds none goes to a file instead.
    fn lend(&self, bytes: u64) -> Option<Lent> {
        let kib = u32::try_from(bytes.div_ceil(1024)).ok()?.max(1);
        let permit = Arc::clone(&self.kib).try_acquire_many_owned(kib).ok()?;
        Some(Lent { permit })
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
}

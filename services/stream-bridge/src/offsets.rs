//! Which offset of a partition may be committed: the one after the last
//! record whose whole work succeeded with every earlier record's. Records
//! finish out of order; a record still in flight holds back every later one.

use std::collections::{BTreeSet, HashMap};

/// The records of one partition between "received" and "done".
#[derive(Debug, Default)]
pub struct PartitionProgress {
    in_flight: BTreeSet<i64>,
    /// Offsets done while an earlier one was still in flight.
    done_early: BTreeSet<i64>,
}

impl PartitionProgress {
    pub fn received(&mut self, offset: i64) {
        self.in_flight.insert(offset);
    }

    /// Marks `offset` done; returns the offset to commit (the next one to
    /// read) when it advanced.
    pub fn done(&mut self, offset: i64) -> Option<i64> {
        if !self.in_flight.remove(&offset) {
            return None;
        }
        let oldest_in_flight = self.in_flight.first().copied();
        match oldest_in_flight {
            Some(oldest) if oldest < offset => {
                self.done_early.insert(offset);
                None
            }
            _ => {
                // Everything below the oldest record in flight is done.
                let limit = oldest_in_flight.unwrap_or(i64::MAX);
                let mut next = offset + 1;
                while let Some(&early) = self.done_early.first() {
                    if early >= limit {
                        break;
                    }
                    self.done_early.remove(&early);
                    next = next.max(early + 1);
                }
                Some(next)
            }
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// Progress of every partition this consumer owns, by (topic, partition).
#[derive(Debug, Default)]
pub struct Progress {
    partitions: HashMap<(String, i32), PartitionProgress>,
}

impl Progress {
    pub fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        self.partitions
            .entry((topic.to_owned(), partition))
            .or_default()
            .received(offset);
    }

    pub fn done(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        self.partitions
            .get_mut(&(topic.to_owned(), partition))
            .and_then(|p| p.done(offset))
    }

    /// Forgets a partition this consumer no longer owns: its records in
    /// flight will be read again by the new owner.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(topic.to_owned(), partition));
    }

    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(PartitionProgress::in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn in_order_completion_commits_each_next_offset() {
        let mut p = PartitionProgress::default();
        for offset in 10..13 {
            p.received(offset);
        }
        assert_eq!(p.done(10), Some(11));
        assert_eq!(p.done(11), Some(12));
        assert_eq!(p.done(12), Some(13));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn a_record_in_flight_holds_back_later_ones_until_it_is_done() {
        let mut p = PartitionProgress::default();
        for offset in 0..4 {
            p.received(offset);
        }
        assert_eq!(p.done(2), None);
        assert_eq!(p.done(3), None);
        assert_eq!(p.done(1), None, "0 is still in flight");
        assert_eq!(p.done(0), Some(4));
    }

    #[test]
    fn an_unknown_or_repeated_offset_changes_nothing() {
        let mut p = PartitionProgress::default();
        p.received(5);
        assert_eq!(p.done(4), None);
        assert_eq!(p.done(5), Some(6));
        assert_eq!(p.done(5), None);
    }

    #[test]
    fn a_revoked_partition_commits_nothing_more() {
        let mut progress = Progress::default();
        progress.received("images", 0, 7);
        progress.revoke("images", 0);
        assert_eq!(progress.done("images", 0, 7), None);
        assert_eq!(progress.in_flight(), 0);
    }

    proptest! {
        /// In any completion order, the offset to commit never passes a
        /// record not yet done, and reaches the end once all are done.
        #[test]
        fn commits_never_pass_an_unfinished_record(order in Just((0..40i64).collect::<Vec<_>>()).prop_shuffle()) {
            let mut p = PartitionProgress::default();
            for offset in 0..40 {
                p.received(offset);
            }
            let mut done = BTreeSet::new();
            let mut committed = 0;
            for offset in order {
                done.insert(offset);
                if let Some(next) = p.done(offset) {
                    prop_assert!(next > committed);
                    prop_assert!((0..next).all(|o| done.contains(&o)), "commit {next} passes an unfinished record");
                    committed = next;
                }
            }
            prop_assert_eq!(committed, 40);
        }
    }
}

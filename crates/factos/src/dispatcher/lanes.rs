//! Who runs the next batch of a boundary: one lane per (query, stream) in
//! flight, holding the commands that arrived while its batch ran.
//!
//! No timer: a command that finds its lane idle leads a batch of one at once
//! (a lone command pays a lock and a map entry); one that finds it busy
//! queues. When a batch ends, its leader hands the queue (up to the batch
//! limit) to the first queued command still waiting, which leads the next
//! batch; the lane closes when nothing is queued. A leader whose future is
//! dropped mid-batch still hands off (the hand-off runs on drop), so queued
//! commands are never stranded; the commands of its own batch learn that
//! the outcome is unknown.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_channel::oneshot;

/// A queued command and where its outcome goes.
pub(crate) struct Waiter<T, R> {
    pub(crate) command: T,
    reply: oneshot::Sender<Reply<T, R>>,
}

impl<T, R> Waiter<T, R> {
    /// Sends the command its outcome (dropped if it stopped waiting).
    pub(crate) fn finish(self, outcome: R) {
        let _ = self.reply.send(Reply::Done(outcome));
    }
}

/// What a queued command is told.
pub(crate) enum Reply<T, R> {
    /// Its outcome, decided in someone else's batch.
    Done(R),
    /// Lead the next batch: these queued commands join it, after this one.
    Lead(Vec<Waiter<T, R>>),
}

/// How a command joins its lane.
pub(crate) enum Joined<'a, K: Hash + Eq + Clone, T, R> {
    /// The lane was idle: lead a batch now.
    Lead,
    /// The lane is busy: wait for an outcome or for the lead.
    Wait(Waiting<'a, K, T, R>),
}

/// A queued command's end of its reply. Dropped before it took a lead that
/// was sent to it (its caller gave up at that moment), it passes the lead
/// on, so the lane is never left without a leader.
pub(crate) struct Waiting<'a, K: Hash + Eq + Clone, T, R> {
    lanes: &'a Lanes<K, T, R>,
    key: K,
    receiver: oneshot::Receiver<Reply<T, R>>,
}

impl<K: Hash + Eq + Clone, T, R> Waiting<'_, K, T, R> {
    /// The outcome or the lead; `Err` when the sender went away without
    /// either (the batch's leader was dropped).
    pub(crate) async fn reply(&mut self) -> Result<Reply<T, R>, oneshot::Canceled> {
        (&mut self.receiver).await
    }
}

impl<K: Hash + Eq + Clone, T, R> Drop for Waiting<'_, K, T, R> {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(Some(Reply::Lead(batch))) = self.receiver.try_recv() {
            self.lanes.pass_lead(&self.key, batch);
        }
    }
}

/// The lanes of one dispatcher.
pub(crate) struct Lanes<K, T, R> {
    lanes: Mutex<HashMap<K, VecDeque<Waiter<T, R>>>>,
    /// Most commands in one batch, its leader included (at least 1).
    max_batch: usize,
}

impl<K: Hash + Eq + Clone, T, R> Lanes<K, T, R> {
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
            max_batch: max_batch.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, VecDeque<Waiter<T, R>>>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins `key`'s lane: leads if it is idle, else queues `command()`
    /// (called only then).
    pub(crate) fn join(&self, key: &K, command: impl FnOnce() -> T) -> Joined<'_, K, T, R> {
        let mut lanes = self.lock();
        match lanes.get_mut(key) {
            None => {
                lanes.insert(key.clone(), VecDeque::new());
                Joined::Lead
            }
            Some(queue) => {
                let (reply, receiver) = oneshot::channel();
                queue.push_back(Waiter {
                    command: command(),
                    reply,
                });
                Joined::Wait(Waiting {
                    lanes: self,
                    key: key.clone(),
                    receiver,
                })
            }
        }
    }

    /// Ends a batch on `key`: hands the queued commands (up to the limit) to
    /// the first one still waiting, or closes the lane when none is queued.
    pub(crate) fn hand_off(&self, key: &K) {
        let batch: Vec<Waiter<T, R>> = {
            let mut lanes = self.lock();
            let Some(queue) = lanes.get_mut(key) else {
                return;
            };
            if queue.is_empty() {
                lanes.remove(key);
                return;
            }
            let take = queue.len().min(self.max_batch);
            // A command that stopped waiting (its future dropped) is left
            // out: nobody would see its outcome.
            queue
                .drain(..take)
                .filter(|waiter| !waiter.reply.is_canceled())
                .collect()
        };
        self.pass_lead(key, batch);
    }

    /// Gives `batch` to its first command still waiting, the others joining
    /// it; when none is, hands the lane off again.
    fn pass_lead(&self, key: &K, mut batch: Vec<Waiter<T, R>>) {
        while !batch.is_empty() {
            let leader = batch.remove(0);
            match leader.reply.send(Reply::Lead(batch)) {
                Err(Reply::Lead(back)) => batch = back,
                // Sent (a `Done` never comes back: only a lead was sent).
                Ok(()) | Err(Reply::Done(_)) => return,
            }
        }
        self.hand_off(key);
    }
}

/// Hands `key`'s lane off when dropped: at the end of a batch, or when the
/// future leading it is dropped.
pub(crate) struct Leading<'a, K: Hash + Eq + Clone, T, R> {
    lanes: &'a Lanes<K, T, R>,
    key: K,
}

impl<'a, K: Hash + Eq + Clone, T, R> Leading<'a, K, T, R> {
    pub(crate) fn new(lanes: &'a Lanes<K, T, R>, key: K) -> Self {
        Self { lanes, key }
    }
}

impl<K: Hash + Eq + Clone, T, R> Drop for Leading<'_, K, T, R> {
    fn drop(&mut self) {
        self.lanes.hand_off(&self.key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::{Joined, Lanes, Leading, Reply, Waiting};

    type Lane<'a> = Waiting<'a, &'static str, u32, &'static str>;

    fn wait<'a>(joined: Joined<'a, &'static str, u32, &'static str>) -> Lane<'a> {
        match joined {
            Joined::Wait(waiting) => waiting,
            Joined::Lead => panic!("led a busy lane"),
        }
    }

    /// What a waiting command has been sent so far.
    fn sent(waiting: &mut Lane<'_>) -> Option<Reply<u32, &'static str>> {
        waiting.receiver.try_recv().unwrap()
    }

    #[test]
    fn an_idle_lane_is_led_and_a_busy_one_queues() {
        let lanes: Lanes<&str, u32, &str> = Lanes::new(8);
        assert!(matches!(lanes.join(&"a", || 1), Joined::Lead));
        assert!(
            matches!(lanes.join(&"b", || 2), Joined::Lead),
            "lanes are per key"
        );
        let mut second = wait(lanes.join(&"a", || 3));
        lanes.hand_off(&"a");
        match sent(&mut second) {
            Some(Reply::Lead(rest)) => assert!(rest.is_empty()),
            _ => panic!("the queued command was not handed the lead"),
        }
        // The lane stays busy until the new leader hands off in turn.
        let _third = wait(lanes.join(&"a", || 4));
    }

    #[test]
    fn the_queue_is_handed_off_in_arrival_order_up_to_the_limit() {
        let lanes: Lanes<&str, u32, &str> = Lanes::new(3);
        assert!(matches!(lanes.join(&"a", || 0), Joined::Lead));
        let mut receivers: Vec<_> = (1..=5).map(|n| wait(lanes.join(&"a", || n))).collect();
        lanes.hand_off(&"a");
        let Some(Reply::Lead(rest)) = sent(&mut receivers[0]) else {
            panic!("no lead");
        };
        assert_eq!(
            rest.iter().map(|w| w.command).collect::<Vec<_>>(),
            vec![2, 3]
        );
        for waiter in rest {
            waiter.finish("done");
        }
        assert!(matches!(sent(&mut receivers[1]), Some(Reply::Done("done"))));
        // 4 and 5 are still queued: the next hand-off goes to 4.
        lanes.hand_off(&"a");
        assert!(matches!(sent(&mut receivers[3]), Some(Reply::Lead(rest)) if rest.len() == 1));
    }

    #[test]
    fn a_command_that_stopped_waiting_is_skipped_and_the_lane_closes_when_empty() {
        let lanes: Lanes<&str, u32, &str> = Lanes::new(8);
        assert!(matches!(lanes.join(&"a", || 0), Joined::Lead));
        drop(wait(lanes.join(&"a", || 1)));
        let mut second = wait(lanes.join(&"a", || 2));
        {
            let _leading = Leading::new(&lanes, "a");
        }
        let Some(Reply::Lead(rest)) = sent(&mut second) else {
            panic!("the live command was not handed the lead");
        };
        assert!(rest.is_empty());
        lanes.hand_off(&"a");
        assert!(
            matches!(lanes.join(&"a", || 3), Joined::Lead),
            "the lane did not close"
        );
    }

    #[test]
    fn a_lead_sent_to_a_command_that_gave_up_is_passed_on() {
        let lanes: Lanes<&str, u32, &str> = Lanes::new(8);
        assert!(matches!(lanes.join(&"a", || 0), Joined::Lead));
        let gave_up = wait(lanes.join(&"a", || 1));
        let mut next = wait(lanes.join(&"a", || 2));
        lanes.hand_off(&"a");
        // The lead (with 2 in its batch) reached 1, which is dropped unread.
        drop(gave_up);
        let Some(Reply::Lead(rest)) = sent(&mut next) else {
            panic!("the lead stayed with a command that gave up: the lane is stranded");
        };
        assert!(rest.is_empty());
        lanes.hand_off(&"a");
        assert!(
            matches!(lanes.join(&"a", || 3), Joined::Lead),
            "the lane did not close"
        );
    }

    #[test]
    fn a_queued_command_that_gave_up_is_not_handed_to_a_batch() {
        let lanes: Lanes<&str, u32, &str> = Lanes::new(8);
        assert!(matches!(lanes.join(&"a", || 0), Joined::Lead));
        let mut first = wait(lanes.join(&"a", || 1));
        drop(wait(lanes.join(&"a", || 2)));
        let _third = wait(lanes.join(&"a", || 3));
        lanes.hand_off(&"a");
        let Some(Reply::Lead(rest)) = sent(&mut first) else {
            panic!("no lead");
        };
        assert_eq!(rest.iter().map(|w| w.command).collect::<Vec<_>>(), vec![3]);
    }
}

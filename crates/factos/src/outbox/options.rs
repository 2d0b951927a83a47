//! How an outbox worker leases and retries, and its limits.

use std::time::Duration;

use super::OutboxError;

/// Largest [`OutboxOptions::batch_size`].
pub const MAX_OUTBOX_BATCH: usize = 1000;
/// Longest lease and longest pause between attempts (100 years): `now()`
/// plus more than this may not fit a database's timestamp, so
/// [`OutboxOptions::check`] refuses options that would need it.
pub const MAX_OUTBOX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// How often the pause between attempts doubles at most.
const MAX_DOUBLINGS: u32 = 20;
/// Longest error text kept with a failed message, in bytes (longer texts are cut).
pub const MAX_ERROR_BYTES: usize = 4096;

/// How a store's outbox worker (`factos_postgres::Outbox`,
/// `factos_sqlite::Outbox`) leases and retries.
///
/// ```
/// use std::time::Duration;
/// use factos::outbox::OutboxOptions;
/// let options = OutboxOptions::default().max_attempts(3).lease(Duration::from_secs(10));
/// assert_eq!(options.max_attempts, 3);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboxOptions {
    /// Most messages leased at once (1 to [`MAX_OUTBOX_BATCH`]; default 100).
    pub batch_size: usize,
    /// How long a lease lasts (1 ms to [`MAX_OUTBOX_DELAY`]; default 30 s);
    /// a message not acknowledged or failed by then is handed out again, and
    /// the attempt counts as failed.
    pub lease: Duration,
    /// Attempts before a message is parked, whether they failed or their
    /// lease ran out (default 5).
    pub max_attempts: u32,
    /// Pause after a first failure, at most [`MAX_OUTBOX_DELAY`]; it doubles
    /// per attempt (default 1 s).
    pub retry_delay: Duration,
    /// Longest pause between attempts (default 10 min). The longest pause
    /// the options allow (`retry_delay` doubled 20 times, capped by this)
    /// must be at most [`MAX_OUTBOX_DELAY`].
    pub max_retry_delay: Duration,
    /// How often an idle worker's `run` looks for due messages when no
    /// commit of this process woke it (default 1 s).
    pub poll_interval: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            lease: Duration::from_secs(30),
            max_attempts: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl OutboxOptions {
    /// Sets [`OutboxOptions::batch_size`].
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// Sets [`OutboxOptions::lease`].
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`OutboxOptions::max_attempts`].
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`OutboxOptions::retry_delay`].
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`OutboxOptions::max_retry_delay`].
    #[must_use]
    pub fn max_retry_delay(mut self, delay: Duration) -> Self {
        self.max_retry_delay = delay;
        self
    }

    /// Sets [`OutboxOptions::poll_interval`].
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Checks every option is in range (workers call it before they start).
    ///
    /// # Errors
    ///
    /// [`OutboxError::InvalidOptions`], saying which option and its range.
    pub fn check(&self) -> Result<(), OutboxError> {
        let invalid = |reason: &str| Err(OutboxError::InvalidOptions(reason.to_string()));
        if !(1..=MAX_OUTBOX_BATCH).contains(&self.batch_size) {
            return invalid("the batch size must be 1 to 1000");
        }
        if self.max_attempts == 0 {
            return invalid("max attempts must be at least 1");
        }
        if self.lease < Duration::from_millis(1) || self.poll_interval.is_zero() {
            return invalid("the lease and the poll interval must be at least 1 ms");
        }
        if self.lease > MAX_OUTBOX_DELAY {
            return invalid("the lease must be at most 100 years (MAX_OUTBOX_DELAY)");
        }
        if self.retry_delay > MAX_OUTBOX_DELAY || self.delay(u32::MAX) > MAX_OUTBOX_DELAY {
            return invalid(
                "the pause between attempts (retry_delay doubled up to 20 times, capped by \
                 max_retry_delay) must stay within 100 years (MAX_OUTBOX_DELAY)",
            );
        }
        Ok(())
    }

    /// The pause after failed attempt `attempt` (1-based); it stops growing
    /// after attempt 21, so `delay(u32::MAX)` is the longest.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(MAX_DOUBLINGS);
        self.retry_delay
            .saturating_mul(factor)
            .min(self.max_retry_delay)
    }
}

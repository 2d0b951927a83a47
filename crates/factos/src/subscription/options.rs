//! How a subscription reads, waits and retries, and its limits.

use std::time::Duration;

use super::{PoisonPolicy, SubscriptionError};

/// Largest [`SubscriptionOptions::batch_size`].
pub const MAX_BATCH_SIZE: usize = 10_000;
/// Longest subscriber name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// How a subscription reads, waits and retries.
///
/// ```
/// use std::time::Duration;
/// use factos::subscription::SubscriptionOptions;
/// let options = SubscriptionOptions::default()
///     .batch_size(100)
///     .poll_interval(Duration::from_millis(250));
/// assert_eq!(options.batch_size, 100);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscriptionOptions {
    /// Most events handed to the handler at once (1 to [`MAX_BATCH_SIZE`];
    /// default 500).
    pub batch_size: usize,
    /// How often a caught-up subscriber looks for new events when no
    /// wake-up arrived, and how often a standby instance tries to take over
    /// (default 1 s).
    pub poll_interval: Duration,
    /// How many times one batch is tried before the subscription stops with
    /// [`SubscriptionError::Handler`] or,
    /// under [`PoisonPolicy::Park`], narrows down to the poison event (default 5).
    pub handler_attempts: u32,
    /// The pause after a batch's first failure; it doubles with every
    /// further failure, up to 30 s (default 100 ms).
    pub retry_delay: Duration,
    /// What happens after [`handler_attempts`](Self::handler_attempts)
    /// failures: stop (the default) or park the poison event and go on.
    pub poison: PoisonPolicy,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            handler_attempts: 5,
            retry_delay: Duration::from_millis(100),
            poison: PoisonPolicy::Stop,
        }
    }
}

impl SubscriptionOptions {
    /// Sets [`SubscriptionOptions::batch_size`].
    #[must_use]
    pub fn batch_size(mut self, size: usize) -> Self {
        self.batch_size = size;
        self
    }

    /// Sets [`SubscriptionOptions::poll_interval`].
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`SubscriptionOptions::handler_attempts`].
    #[must_use]
    pub fn handler_attempts(mut self, attempts: u32) -> Self {
        self.handler_attempts = attempts;
        self
    }

    /// Sets [`SubscriptionOptions::retry_delay`].
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`SubscriptionOptions::poison`].
    #[must_use]
    pub fn on_poison(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// Checks every option is in range (subscriptions call it before they
    /// start).
    ///
    /// # Errors
    ///
    /// [`SubscriptionError::InvalidOptions`], saying which option.
    pub fn check(&self) -> Result<(), SubscriptionError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(SubscriptionError::InvalidOptions(format!(
                "batch size {} is outside 1..={MAX_BATCH_SIZE}",
                self.batch_size
            )));
        }
        if self.handler_attempts == 0 {
            return Err(SubscriptionError::InvalidOptions(
                "handler attempts must be at least 1".to_string(),
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(SubscriptionError::InvalidOptions(
                "the poll interval must be longer than zero".to_string(),
            ));
        }
        Ok(())
    }

    /// The pause before attempt `attempt + 1` of a batch.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_delay
            .saturating_mul(factor)
            .min(Duration::from_secs(30))
    }
}

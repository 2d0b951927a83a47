//! Starting over inside the store: the backoff between attempts and the
//! error when other dispatches keep holding the keys.

use factos::{StoreError, StoreErrorKind};

/// A short pause before starting a decision over, growing with the attempt
/// and jittered so racing retries spread out.
pub(crate) async fn backoff(attempt: u32) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) % 500);
    let micros = 200 * u64::from(attempt.min(20)) + jitter;
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

pub(crate) fn contention(attempts: u32) -> StoreError {
    StoreError::new(
        StoreErrorKind::Contention,
        format!(
            "gave up after {attempts} attempts: other dispatches kept holding keys these events need"
        ),
    )
}

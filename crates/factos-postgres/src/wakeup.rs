//! Waking subscribers after commits without slowing appends down.
//!
//! A `NOTIFY` inside an append transaction takes a database-wide lock at
//! commit and serializes every committing writer. factos never does that:
//! after a commit, the store wakes subscribers of its own process directly
//! and asks one background task to send a `NOTIFY` in a statement of its own,
//! at most once per [`StoreOptions::notify_interval`](crate::StoreOptions::notify_interval)
//! (wake-ups in between coalesce into one). Subscribers also poll, so a lost
//! notification only delays them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use factos::StoreError;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

use crate::error::{Phase, db_error};

/// Opens a plain (non-pooled) connection to the store's server.
pub(crate) type Connect = Arc<
    dyn Fn() -> Pin<
            Box<dyn Future<Output = Result<Listening, tokio_postgres::Error>> + Send + 'static>,
        > + Send
        + Sync,
>;

/// A connection whose notifications bump `notifications` (a counter, so
/// any number of them between two waits coalesce into one wake-up and a
/// busy subscriber never queues them up); dropping it closes the connection.
pub(crate) struct Listening {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) notifications: watch::Receiver<u64>,
}

/// A connector for `config` with `tls`, the same way the pool connects.
pub(crate) fn connector<T>(config: tokio_postgres::Config, tls: T) -> Connect
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync + 'static,
    T::TlsConnect: Send + Sync,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    Arc::new(move || {
        let config = config.clone();
        let tls = tls.clone();
        Box::pin(async move {
            let (client, mut connection) = config.connect(tls).await?;
            let (sender, notifications) = watch::channel(0u64);
            // Drives the connection and counts its notifications; ends when
            // the client is dropped or the connection breaks (the receiver
            // then sees the sender gone).
            tokio::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if matches!(message, AsyncMessage::Notification(_)) {
                        sender.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    if sender.is_closed() {
                        break;
                    }
                }
            });
            Ok(Listening {
                client,
                notifications,
            })
        })
    })
}

/// Connects and runs `listen` (the store's `LISTEN` on its channel).
pub(crate) async fn listen(connect: &Connect, listen: &str) -> Result<Listening, StoreError> {
    let listening = connect()
        .await
        .map_err(|e| db_error("cannot open a listening connection", e, Phase::BeforeCommit))?;
    listening
        .client
        .batch_execute(listen)
        .await
        .map_err(|e| db_error("cannot listen for commits", e, Phase::BeforeCommit))?;
    Ok(listening)
}

/// The coalescing `NOTIFY` sender of one store.
#[derive(Default)]
pub(crate) struct Notifier {
    wake: tokio::sync::Notify,
    started: OnceLock<()>,
    closed: AtomicBool,
}

impl Notifier {
    /// Asks for a `NOTIFY`; starts the sending task on first use (when
    /// called inside a tokio runtime; outside one, only polling wakes
    /// subscribers elsewhere).
    pub(crate) fn wake(
        this: &Arc<Notifier>,
        store: Weak<impl Announce + Send + Sync + 'static>,
        interval: Duration,
    ) {
        if this.started.get().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            this.started.get_or_init(|| {
                runtime.spawn(send_notifications(Arc::clone(this), store, interval));
            });
        }
        this.wake.notify_one();
    }

    /// Ends the sending task (the store is gone).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// What the sending task needs of the store.
pub(crate) trait Announce {
    /// Sends one `NOTIFY` on the store's channel.
    fn announce(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

async fn send_notifications<S: Announce + Send + Sync + 'static>(
    notifier: Arc<Notifier>,
    store: Weak<S>,
    interval: Duration,
) {
    loop {
        notifier.wake.notified().await;
        if notifier.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Err(e) = store.announce().await {
            // Subscribers poll: a lost notification only delays them.
            tracing::debug!(error = %e, "cannot send NOTIFY for commits");
        }
        drop(store);
        tokio::time::sleep(interval).await;
    }
}

//! Recording a reactor's effects into the outbox in the dispatch's own
//! transaction, then committing events and effects together.

use factos::Committed;
use factos::store::{DecisionError, DecisionProcess};
use tokio_postgres::types::ToSql;

use crate::error::{Phase, db_error};
use crate::store::PostgresStore;
use crate::store::session::Session;

impl PostgresStore {
    /// Ends a decision whose append went through: when the append kept the
    /// transaction open for the events' effects, records them and commits
    /// ([`Self::record_and_commit`]); when its pipeline committed, there is
    /// nothing left to do.
    pub(crate) async fn finish_decision<P: DecisionProcess>(
        &self,
        session: Session,
        process: &mut P,
        committed: Committed,
    ) -> Result<Committed, DecisionError<P::Error>> {
        if session.is_open() {
            return self.record_and_commit(session, process, committed).await;
        }
        Ok(committed)
    }

    /// Second half of a decision that records effects: the events are
    /// appended in the open transaction; the process's effects of them are
    /// inserted into the outbox and the transaction commits, in one round
    /// trip. A failing reactor rolls everything back.
    pub(crate) async fn record_and_commit<P: DecisionProcess>(
        &self,
        session: Session,
        process: &mut P,
        committed: Committed,
    ) -> Result<Committed, DecisionError<P::Error>> {
        // A replay found an earlier attempt's events, committed with their effects.
        let effects = if committed.replayed {
            Vec::new()
        } else {
            match process.effects(&committed.events) {
                Ok(effects) => effects,
                Err(e) => {
                    session.rollback().await;
                    return Err(DecisionError::Process(e));
                }
            }
        };
        let client = session.client()?;
        let mut causes = Vec::with_capacity(effects.len());
        let mut topics = Vec::with_capacity(effects.len());
        let mut payloads = Vec::with_capacity(effects.len());
        for effect in &effects {
            causes.push(i64::try_from(effect.cause.get()).unwrap_or(i64::MAX));
            topics.push(effect.message.topic.as_str());
            payloads.push(effect.message.payload.as_slice());
        }
        let statement = if effects.is_empty() {
            None
        } else {
            match client.prepare_cached(&self.sql().outbox_record).await {
                Ok(statement) => Some(statement),
                Err(e) => {
                    session.rollback().await;
                    return Err(DecisionError::Store(db_error(
                        "cannot prepare the outbox insert",
                        e,
                        Phase::BeforeCommit,
                    )));
                }
            }
        };
        let params: [&(dyn ToSql + Sync); 3] = [&causes, &topics, &payloads];
        let (recorded, commit) = futures_util::join!(
            async {
                match &statement {
                    Some(statement) => client.execute(statement, &params).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            client.batch_execute("COMMIT"),
        );
        session.set_open(false);
        match (recorded, commit) {
            // The insert failed on the server: the COMMIT rolled back.
            (Err(e), Ok(())) if e.as_db_error().is_some() => Err(DecisionError::Store(db_error(
                "cannot record the effects",
                e,
                Phase::BeforeCommit,
            ))),
            (Err(e), _) | (Ok(()), Err(e)) => Err(DecisionError::Store(db_error(
                "cannot commit the events and their effects",
                e,
                Phase::Commit,
            ))),
            (Ok(()), Ok(())) => {
                if !committed.replayed && !committed.events.is_empty() {
                    self.committed();
                }
                Ok(committed)
            }
        }
    }
}

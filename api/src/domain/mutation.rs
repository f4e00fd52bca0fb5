//! The domain transaction: one transaction in which a mutation claims its
//! `Idempotency-Key`, changes its domain table, appends its events through the
//! one append path (`append_events`: event and outbox row, so the relay and
//! every group see them) and stores its answer under the key. A mutation whose
//! transaction fails leaves none of these.
//!
//! The key is claimed first (`claim_idempotency_key`, the claim the appends of
//! `POST /api/v1/events` make too), so a retry is answered from the key before
//! the resource is looked at: a finished request with the same hash is
//! replayed, with another hash it is a 422, and while the first request is in
//! flight a 409. Only a mutation that commits keeps its key; a refused one
//! (412, 409, …) rolls its claim back with everything else.

use chrono::{SubsecRound, Utc};
use http::StatusCode;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;
use xentri_core::store::AppendOutcome;
use xentri_core::{EventType, NewEvent, StoredEvent, sql};

use super::request::Mutating;
use crate::db::OrgTx;
use crate::idempotency::{self, StoredResponse};
use crate::problem::ApiError;
use crate::state::AppState;

/// What a domain mutation answered, for the routes to send.
#[derive(Debug)]
pub enum Answer {
    /// Done now.
    Done {
        /// 201 or 200.
        status: StatusCode,
        /// The changed resource's version, for the `ETag`; none when the
        /// answer is not one resource (an import).
        version: Option<i64>,
        /// The answer's body, as stored under the key.
        body: String,
    },
    /// The idempotency key's stored answer.
    Replayed(StoredResponse),
}

/// What running a mutation's work came to.
pub enum Ran<T> {
    /// The work is done in the still-open mutation, which the caller commits.
    Done(Box<Mutation>, T),
    /// The key holds the answer of a finished request with the same hash.
    Replayed(StoredResponse),
}

/// How many times a claim is tried: a second pass only when the key's answer
/// expired between the claim and its read-back.
const ATTEMPTS: usize = 2;

/// What beginning a mutation came to.
enum Begun {
    /// The key is claimed: go on with the mutation.
    Mutation(Box<Mutation>),
    /// The key holds the answer of a finished request with the same hash.
    Replayed(StoredResponse),
}

/// An open domain transaction holding its request's key, opened only by
/// [`Mutation::run`], which rolls it back when the resource's work fails. It
/// ends with [`Mutation::commit`] or [`Mutation::rollback`]; rolled back, nothing of it
/// stays: no row, no event, no key. (Merely dropped, it rolls back only when
/// its connection is next used, and until then the key stays locked: a retry
/// would be told it is in flight.)
pub struct Mutation {
    tx: OrgTx,
    request: Mutating,
    /// The events to append at commit, in order, each with where its outbox
    /// row aims.
    events: Vec<(NewEvent, Target)>,
}

/// Where a queued event's outbox row aims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The events work stream: every consumer of the org's events sees it.
    Events,
    /// The jobs work stream: a job for a background handler (a site build).
    Jobs,
}

impl Mutation {
    /// Opens the transaction for `request`'s org and claims its key; 409 while
    /// the key's first request is in flight, 422 when the key was used with
    /// another request.
    async fn begin(state: &AppState, request: Mutating) -> Result<Begun, ApiError> {
        let ttl = state.settings.idempotency.ttl_secs as f64;
        for _ in 0..ATTEMPTS {
            let mut tx = state.db.begin(request.org_id()).await?;
            let claim: String = sqlx::query_scalar(sql::CLAIM_IDEMPOTENCY_KEY)
                .bind(request.org_id())
                .bind(request.key.as_str())
                .bind(&request.request_hash)
                .bind(ttl)
                .fetch_one(&mut *tx)
                .await?;
            match claim.as_str() {
                "claimed" => return Ok(Begun::Mutation(Box::new(Self { tx, request, events: Vec::new() }))),
                "in_flight" => {
                    end(tx).await;
                    return Err(idempotency::in_flight());
                }
                "answered" => {
                    // The claim took the key's lock: it is released before the answer goes out.
                    let stored = idempotency::stored(&mut tx, &request.key).await;
                    end(tx).await;
                    if let Some(stored) = stored? {
                        return Ok(Begun::Replayed(stored.replay_for(&request.request_hash)?));
                    }
                }
                other => {
                    end(tx).await;
                    return Err(ApiError::Internal(anyhow::anyhow!("unknown idempotency claim {other:?}")));
                }
            }
        }
        Err(ApiError::Internal(anyhow::anyhow!("idempotency key kept changing")))
    }

    /// Begins the mutation ([`Mutation::begin`]) and runs `work` in it. When
    /// the work fails the mutation is rolled back at once (nothing stays, the
    /// key is free for a retry) and its error returned; when it succeeds the
    /// mutation stays open for the caller to commit with its answer.
    pub async fn run<T>(
        state: &AppState,
        request: Mutating,
        work: impl AsyncFnOnce(&mut Mutation) -> Result<T, ApiError>,
    ) -> Result<Ran<T>, ApiError> {
        let mut mutation = match Self::begin(state, request).await? {
            Begun::Mutation(mutation) => mutation,
            Begun::Replayed(stored) => return Ok(Ran::Replayed(stored)),
        };
        match work(&mut mutation).await {
            Ok(value) => Ok(Ran::Done(mutation, value)),
            Err(error) => {
                mutation.rollback().await;
                Err(error)
            }
        }
    }

    /// The transaction, for the resource's own statements.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// The request being answered.
    pub fn request(&self) -> &Mutating {
        &self.request
    }

    /// Queues an event of `event_type` with `payload` (a JSON object), carrying
    /// the request's actor, trace and correlation ids; appended at commit, in
    /// the order queued.
    pub fn emit(&mut self, event_type: &str, payload: &impl Serialize) -> Result<(), ApiError> {
        self.queue(event_type, payload, Target::Events).map(|_| ())
    }

    /// Queues a job of `event_type` with `payload`: an event like
    /// [`Mutation::emit`]'s whose outbox row aims at the jobs work stream, so
    /// the job is enqueued if and only if the mutation commits. Returns the
    /// job's event id.
    pub fn enqueue_job(&mut self, event_type: &str, payload: &impl Serialize) -> Result<Uuid, ApiError> {
        self.queue(event_type, payload, Target::Jobs)
    }

    fn queue(&mut self, event_type: &str, payload: &impl Serialize, target: Target) -> Result<Uuid, ApiError> {
        let event_type = EventType::parse(event_type).map_err(|e| ApiError::Internal(anyhow::anyhow!(e.message)))?;
        let payload = serde_json::value::to_raw_value(payload).map_err(|e| ApiError::Internal(e.into()))?;
        if !payload.get().starts_with('{') {
            return Err(ApiError::Internal(anyhow::anyhow!("an event payload must be a JSON object")));
        }
        let request = &self.request;
        let id = Uuid::now_v7();
        let event = NewEvent {
            id,
            org_id: request.org_id(),
            event_type,
            payload,
            actor: request.principal.actor.clone(),
            trace_id: request.trace_id.clone(),
            correlation_id: request.correlation_id.clone(),
            causation_id: None,
            // PostgreSQL keeps microseconds: an answer must equal what a read returns.
            occurred_at: Utc::now().trunc_subsecs(6),
        };
        self.events.push((event, target));
        Ok(id)
    }

    /// Rolls the transaction back now: nothing of it stays, and the key is free.
    pub async fn rollback(self) {
        end(self.tx).await;
    }

    /// Appends the queued events, stores `status` and `body` as the key's
    /// answer, and commits; then wakes the relay. Returns the events as
    /// stored. On a failure it rolls back: nothing stays.
    pub async fn commit(
        mut self,
        state: &AppState,
        status: StatusCode,
        body: &str,
    ) -> Result<Vec<StoredEvent>, ApiError> {
        let stored = match self.write(state, status, body).await {
            Ok(stored) => stored,
            Err(error) => {
                self.rollback().await;
                return Err(error);
            }
        };
        self.tx.commit().await?;
        if !stored.is_empty() {
            state.outbox.committed();
            metrics::counter!("events_appended_total").increment(stored.len() as u64);
        }
        for event in &stored {
            tracing::debug!(event_id = %event.id, seq = event.seq, event_type = %event.event_type, "event appended");
        }
        Ok(stored)
    }

    /// Appends the queued events and stores the answer under the key.
    async fn write(&mut self, state: &AppState, status: StatusCode, body: &str) -> Result<Vec<StoredEvent>, ApiError> {
        let events = std::mem::take(&mut self.events);
        let mut stored = Vec::with_capacity(events.len());
        let ttl = state.settings.idempotency.ttl_secs as f64;
        // One append per run of events aimed at one stream, in queue order.
        let runs: Vec<(Target, usize)> =
            events.chunk_by(|(_, a), (_, b)| a == b).map(|run| (run[0].1, run.len())).collect();
        let mut events = events.into_iter();
        for (target, len) in runs {
            let run: Vec<NewEvent> = events.by_ref().take(len).map(|(event, _)| event).collect();
            let stream = match target {
                Target::Events => &state.settings.streams.events.work,
                Target::Jobs => &state.settings.streams.jobs.work,
            };
            let records: Vec<_> = run.iter().map(|event| event.record(None)).collect();
            let outcomes = self.tx.append_events(stream, ttl, &records).await?;
            for (event, outcome) in run.into_iter().zip(outcomes) {
                match outcome {
                    AppendOutcome::Appended(seq) => stored.push(event.stored(seq)),
                    // Items without a key are always written.
                    other => return Err(ApiError::Internal(anyhow::anyhow!("keyless append answered {other:?}"))),
                }
            }
        }
        let answered: bool = sqlx::query_scalar(sql::ANSWER_IDEMPOTENCY_KEY)
            .bind(self.request.key.as_str())
            .bind(i16::try_from(status.as_u16()).unwrap_or(200))
            .bind(body)
            .fetch_one(&mut *self.tx)
            .await?;
        if !answered {
            return Err(ApiError::Internal(anyhow::anyhow!("the claimed idempotency key was not found to answer")));
        }
        Ok(stored)
    }
}

/// Rolls `tx` back now. A failure is only logged: sqlx then closes the
/// connection, which ends the transaction and its locks as well.
async fn end(tx: OrgTx) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(error = %error, "rollback of a domain transaction failed");
    }
}

//! The audit log: every exchange, every denial, every admin change.
//!
//! An admin change's event is not queued: it is stored in the change's own
//! transaction (`App::audit_change_in`), so it is durable before the change
//! is acknowledged. Every other event (exchanges, denials) is queued in
//! memory and written in batches by one background task, off the request
//! path: a crash (not a shutdown, which flushes) loses what was queued,
//! at most [`LINGER`] of events plus the batch being written. Nothing is lost: a full queue applies back-pressure
//! instead of dropping, a failed batch is retried, `flush` waits until what
//! was queued before it is stored, and shutdown flushes.
//!
//! Group commit: after the first event of a batch the writer waits up to
//! [`LINGER`] (cut short by `flush`) so that one transaction stores every
//! event of that window. Under load this is what keeps the audit log cheap:
//! per event, a share of one transaction instead of a transaction, and no
//! wake-up of the writer per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::store::{DynStore, NewAudit};

tokio::task_local! {
    /// The ids of the request being handled (set around each request by the
    /// HTTP layer): the audit log records the caller's `X-Request-Id` beside
    /// fedgate's own id without every service threading it through. Like a
    /// tracing span, it travels with the request's task.
    pub static REQUEST_IDS: RequestIds;
}

/// fedgate's id of a request and the caller's `X-Request-Id`, if sane.
#[derive(Clone, Debug, Default)]
pub struct RequestIds {
    pub own: String,
    pub client: String,
}

/// The caller's id recorded for an event of request `own` (empty outside a
/// request, or for an event of another request).
fn client_request_id(own: &str) -> String {
    REQUEST_IDS
        .try_with(|ids| {
            if !own.is_empty() && ids.own == own {
                ids.client.clone()
            } else {
                String::new()
            }
        })
        .unwrap_or_default()
}

/// One event as the services describe it.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub org_id: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// `success`, `denied`, `not_found`, …
    pub outcome: String,
    pub reason: String,
    pub request_id: String,
    /// A JSON object, already serialized (the exchange writes it without
    /// building a `Value`).
    pub details: String,
}

impl AuditEvent {
    /// The row to store: the event with an id and a time.
    pub fn stamp(self, now_ms: i64) -> NewAudit {
        NewAudit {
            id: crate::secrets::new_sortable_id("ev", now_ms),
            org_id: self.org_id,
            at: now_ms,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            reason: self.reason,
            client_request_id: client_request_id(&self.request_id),
            request_id: self.request_id,
            details: self.details,
        }
    }
}

enum Msg {
    Event(Box<NewAudit>),
    Flush(oneshot::Sender<()>),
}

/// A handle to the audit writer; cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    depth: Arc<AtomicI64>,
    /// Ends the writer's linger early (a flush is waiting).
    hurry: Arc<Notify>,
}

/// Most events stored in one transaction.
const BATCH: usize = 512;
/// How long the writer lets a batch gather after its first event: the
/// longest an event waits in memory when nobody flushes.
pub const LINGER: Duration = Duration::from_millis(10);

impl AuditSink {
    /// Starts the writer task. The returned handle ends when every sink is dropped.
    pub fn start(store: DynStore) -> (AuditSink, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8192);
        let depth = Arc::new(AtomicI64::new(0));
        let hurry = Arc::new(Notify::new());
        let task = tokio::spawn(writer(store, rx, depth.clone(), hurry.clone()));
        (AuditSink { tx, depth, hurry }, task)
    }

    /// Queues an event, stamped with `now_ms`.
    pub async fn record(&self, e: AuditEvent, now_ms: i64) {
        let row = e.stamp(now_ms);
        self.depth.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Event(Box::new(row))).await.is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("audit writer stopped; event not recorded");
        }
    }

    /// Waits until every event queued before this call is stored.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            self.hurry.notify_one();
            let _ = done.await;
        }
    }

    /// Events queued and not yet stored (a metric).
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed)
    }
}

async fn writer(
    store: DynStore,
    mut rx: mpsc::Receiver<Msg>,
    depth: Arc<AtomicI64>,
    hurry: Arc<Notify>,
) {
    let mut batch: Vec<NewAudit> = Vec::with_capacity(BATCH);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        push(first, &mut batch, &mut acks);
        // A full batch already queued (the writer is behind) has nothing
        // to wait for: lingering would only add LINGER per batch to the
        // backlog.
        if acks.is_empty() && !rx.is_closed() && rx.len() + 1 < BATCH {
            // Sleeping (rather than awaiting each event) is what spares a
            // wake-up per event; a flush's notification cuts it short.
            tokio::select! {
                _ = tokio::time::sleep(LINGER) => {}
                _ = hurry.notified() => {}
            }
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => push(m, &mut batch, &mut acks),
                Err(_) => break,
            }
        }
        write(&store, &mut batch, &depth).await;
        for a in acks.drain(..) {
            let _ = a.send(());
        }
    }
    write(&store, &mut batch, &depth).await;
}

fn push(m: Msg, batch: &mut Vec<NewAudit>, acks: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Msg::Event(e) => batch.push(*e),
        Msg::Flush(a) => acks.push(a),
    }
}

/// Writes the batch, retrying with backoff while the database is away: an
/// acknowledged event must not be lost (ids make the retry idempotent).
async fn write(store: &DynStore, batch: &mut Vec<NewAudit>, depth: &AtomicI64) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 0.. {
        match store.insert_audit(batch).await {
            Ok(()) => break,
            Err(e) => {
                if attempt % 20 == 0 {
                    tracing::warn!(error = %e, events = batch.len(), "audit write failed; retrying");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    depth.fetch_sub(batch.len() as i64, Ordering::Relaxed);
    batch.clear();
}

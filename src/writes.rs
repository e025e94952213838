//! Group commit of the platform's data writes (runs and trace calls).
//!
//! One transaction per run cost more than everything else a `POST
//! /api/v1/runs` does: on SQLite a round trip to its worker thread per
//! statement, `BEGIN`/`COMMIT` and a WAL append; on PostgreSQL a network
//! round trip and a commit each. Every write therefore goes through one
//! writer task, which stores whatever is queued when it gets to it (up to
//! [`BATCH`] rows) in one transaction of multi-row `INSERT`s.
//!
//! Nothing acknowledged is lost: [`Writes::insert`] returns only after the
//! transaction holding its row committed, and returns the store's error if
//! it did not. There is no waiting for a batch to fill: the first write on
//! an idle writer is stored at once, and only writes that arrive while a
//! commit is under way share the next one. When a batch fails, each of its
//! rows is tried again alone, so one bad row (its project deleted
//! meanwhile) fails only its own request. Rows are inserted with
//! `ON CONFLICT (id) DO NOTHING`, so that retry cannot turn a commit whose
//! acknowledgement was lost into a conflict.

use tokio::sync::{mpsc, oneshot};

use crate::store::{DynStore, RunRow, StoreError, StoreResult, TraceRow};

/// Most rows stored in one transaction.
pub const BATCH: usize = 256;

/// One row to store.
#[derive(Debug)]
pub enum Row {
    Run(RunRow),
    Trace(TraceRow),
}

type Job = (Row, oneshot::Sender<StoreResult<()>>);

/// The handle requests hold; cheap to share.
pub struct Writes {
    tx: mpsc::Sender<Job>,
}

impl Writes {
    /// Starts the writer task on `store`. It ends when the last handle is
    /// dropped, after storing what was queued.
    pub fn start(store: DynStore) -> (Writes, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * BATCH);
        let task = tokio::spawn(writer(store, rx));
        (Writes { tx }, task)
    }

    /// Stores `row` and returns once it is committed (or why it is not).
    pub async fn insert(&self, row: Row) -> StoreResult<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((row, ack))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }
}

async fn writer(store: DynStore, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        store_batch(&store, &mut jobs).await;
    }
}

async fn store_batch(store: &DynStore, jobs: &mut Vec<Job>) {
    let (mut runs, mut traces) = (Vec::new(), Vec::new());
    for (row, _) in jobs.iter() {
        match row {
            Row::Run(r) => runs.push(r),
            Row::Trace(t) => traces.push(t),
        }
    }
    let result = store.insert_rows(&runs, &traces).await;
    drop((runs, traces));
    match result {
        Ok(()) => {
            for (_, ack) in jobs.drain(..) {
                let _ = ack.send(Ok(()));
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some((_, ack)) = jobs.pop() {
                let _ = ack.send(Err(e));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, rows = jobs.len(), "batch failed; storing its rows one by one");
            for (row, ack) in jobs.drain(..) {
                let result = match &row {
                    Row::Run(r) => store.insert_rows(&[r], &[]).await,
                    Row::Trace(t) => store.insert_rows(&[], &[t]).await,
                };
                let _ = ack.send(result);
            }
        }
    }
}

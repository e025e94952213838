//! The accept loop, with a shutdown that loses no request.
//!
//! `axum::serve`'s graceful shutdown closes idle keep-alive connections at
//! once; a client that had just sent its next request on one sees the
//! connection reset (a POST is not retried). This loop shuts down in an
//! order that leaves no such window for clients of established connections:
//!
//! 1. stop accepting: connections the kernel already queued are accepted
//!    and served, then the listener is closed (new connections are refused,
//!    which clients and load balancers treat as "try another");
//! 2. drain: every response now carries `Connection: close`, so each
//!    keep-alive connection ends right after the response to a request its
//!    client already sent, and the client knows not to reuse it;
//! 3. after [`IDLE_GRACE`], connections that stayed idle are closed, and the
//!    requests still in flight get what is left of `--shutdown-timeout`;
//!    whatever still runs after that is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Version, header};
use futures::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How long connections that send nothing more are left open after a
/// shutdown signal (busy ones close after their next response).
pub const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` completes, then drains as
/// described in the module doc within `grace`. Returns whether every
/// connection finished within `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> bool {
    let draining = Arc::new(AtomicBool::new(false));
    // Each connection task holds a receiver of `done`; `done_tx.closed()`
    // resolves when every one has ended. `close_idle` asks them to close.
    let (done_tx, done_rx) = watch::channel(());
    let (close_idle, close_idle_rx) = watch::channel(false);
    let conn = |stream: TcpStream, peer: SocketAddr| {
        spawn_connection(
            stream,
            peer,
            router.clone(),
            draining.clone(),
            done_rx.clone(),
            close_idle_rx.clone(),
        )
    };
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => conn(stream, peer),
                Err(e) => accept_error(e).await,
            },
        }
    }
    // 1. Serve what the kernel has queued already, then refuse the rest.
    while let Some(Ok((stream, peer))) = listener.accept().now_or_never() {
        conn(stream, peer);
    }
    drop(listener);
    // 2. Busy connections close after their next response.
    draining.store(true, Ordering::Relaxed);
    drop(done_rx);
    drop(close_idle_rx);
    let started = tokio::time::Instant::now();
    let idle_wait = IDLE_GRACE.min(grace);
    if tokio::time::timeout(idle_wait, done_tx.closed())
        .await
        .is_ok()
    {
        return true;
    }
    // 3. Close idle connections; in-flight requests get the rest of `grace`.
    let _ = close_idle.send(true);
    let rest = grace.saturating_sub(started.elapsed());
    tokio::time::timeout(rest, done_tx.closed()).await.is_ok()
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    draining: Arc<AtomicBool>,
    done: watch::Receiver<()>,
    mut close_idle: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let http1 = req.version() <= Version::HTTP_11;
        let draining = draining.clone();
        router.clone().oneshot(req).map(move |resp| {
            let mut resp = match resp {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // HTTP/2 has no `Connection` header (RFC 9113 §8.2.2); its
            // connections get a GOAWAY when closed below.
            if http1 && draining.load(Ordering::Relaxed) {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        })
    });
    tokio::spawn(async move {
        let builder = Builder::new(TokioExecutor::new());
        let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                changed = close_idle.changed(), if !closing => {
                    if changed.is_err() || *close_idle.borrow() {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        drop(done);
    });
}

/// Like `axum::serve`: a connection that failed before it was accepted is
/// skipped; anything else (e.g. out of file descriptors) waits a second.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

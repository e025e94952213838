//! fedgate: an identity-federation token exchange gateway (an STS).
//!
//! A workload presents a JWT from its own identity provider; fedgate checks it
//! against the trust an org admin registered, finds the team-scoped external
//! service account bound to it, and mints a short-lived access token that the
//! platform's authorization rules treat exactly like a built-in service
//! account's API key. See `docs/architecture.md`.

pub mod admin_cli;
pub mod apikey;
pub mod audit;
pub mod auth_cache;
pub mod authz;
pub mod backup;
pub mod change;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod federation;
pub mod form;
pub mod http;
pub mod kek;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod ratelimit;
pub mod replication;
pub mod secrets;
pub mod service;
pub mod state;
pub mod store;
pub mod tokens;
pub mod writes;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::audit::AuditSink;
use crate::auth_cache::AuthCache;
use crate::clock::{Clock, SystemClock};
use crate::config::ServeConfig;
use crate::federation::fetch::{FetchPolicy, HttpFetcher};
use crate::federation::index::FederationIndex;
use crate::federation::jwks::{CachePolicy, KeyCache};
use crate::federation::netguard::AddressPolicy;
use crate::service::admin::Bootstrapped;
use crate::state::{App, AppState};
use crate::tokens::Signer;

pub use crate::http::router;

/// A built application and its background tasks.
pub struct Built {
    pub state: AppState,
    /// Set when an empty store was bootstrapped: the admin key, to print once.
    pub bootstrapped: Option<Bootstrapped>,
    audit_task: tokio::task::JoinHandle<()>,
    writes_task: tokio::task::JoinHandle<()>,
    /// The change listener (PostgreSQL) or poller (SQLite); stops when dropped.
    _replication: Option<replication::Replication>,
}

/// Opens the store, loads the signing keys, starts the audit writer and, on
/// an empty store (unless disabled), creates org `default` with admin `admin`.
/// On PostgreSQL it then subscribes to the other replicas' changes
/// ([`replication`]) before returning.
pub async fn build(config: ServeConfig) -> anyhow::Result<Built> {
    let started = std::time::Instant::now();
    let ms = move || started.elapsed().as_secs_f64() * 1e3;
    // aws-lc seeds its generator from CPU jitter on first use: tens of ms of
    // CPU. Started now, beside the store's start-up, it is not paid by the
    // first request (request ids are random), so ready means fast.
    let rng_warmup = tokio::task::spawn_blocking(move || {
        let _ = aws_lc_rs::rand::fill(&mut [0u8; 1]);
        tracing::debug!(ms = ms(), "start-up: (beside) random generator seeded");
    });
    // Also beside the store's start-up: the HTTP client loads the system's
    // root certificates (~10 ms), and the exchange rate limiter's clock
    // (quanta) calibrates itself against the system clock in a busy loop
    // (~10 ms, once per process).
    let fetch_policy = FetchPolicy {
        allow_insecure_loopback: config.allow_insecure_issuers,
        addresses: AddressPolicy::new(config.allow_private_issuers.clone()),
        ..FetchPolicy::default()
    };
    let rate_limit = config.exchange_rate_limit;
    let beside = tokio::task::spawn_blocking(move || {
        let fetcher = HttpFetcher::new(fetch_policy);
        tracing::debug!(ms = ms(), "start-up: (beside) HTTP client built");
        let limiter = ratelimit::ExchangeLimiter::new(rate_limit);
        tracing::debug!(ms = ms(), "start-up: (beside) rate limiter built");
        (fetcher, limiter)
    });
    let kek = kek::Kek::load_optional(config.key_encryption_key_file.as_deref())?;
    let store = store::open(&config.database_url).await?;
    tracing::debug!(ms = ms(), "start-up: store open, migrations checked");
    // Where the change log (SQLite) ends before the caches load: the poller
    // applies whatever other processes publish from here on.
    let log_end = store.change_log_end().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The signing keys and the federation index (issuers, external
    // accounts) are independent reads: both at once.
    let (signer, (issuers, accounts)) = tokio::try_join!(
        Signer::load_with(
            &store,
            &config.public_url,
            &config.signing_alg,
            kek,
            clock.now_ms(),
        ),
        async {
            let r = service::federation::read_index(&store)
                .await
                .map_err(|e| anyhow::anyhow!("loading trusted issuers: {e}"));
            tracing::debug!(ms = ms(), "start-up: index read and compiled");
            r
        }
    )?;
    tracing::debug!(ms = ms(), "start-up: signing keys and index read");
    let (audit, audit_task) = AuditSink::start(store.clone());
    let (writes, writes_task) = writes::Writes::start(store.clone());
    let bootstrap = config.bootstrap;
    let jwks_cooldown = config.jwks_refresh_cooldown_s;
    let (fetcher, limiter) = beside
        .await
        .map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?;
    let fetcher = fetcher.map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?;
    let app = Arc::new(App {
        config,
        store,
        clock,
        audit,
        writes,
        targets: auth_cache::WriteTargets::default(),
        auth: AuthCache::default(),
        signer,
        index: FederationIndex::default(),
        limiter,
        keys: KeyCache::new(
            Arc::new(fetcher),
            CachePolicy {
                refresh_cooldown: std::time::Duration::from_secs(jwks_cooldown),
                ..CachePolicy::default()
            },
        ),
    });
    let weak = Arc::downgrade(&app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(app) => app.limiter.prune(),
                None => break,
            }
        }
    });
    app.index.replace(issuers, accounts);
    tracing::debug!(ms = ms(), "start-up: index built");
    let bootstrapped = if bootstrap && app.store.count_orgs().await? == 0 {
        Some(
            service::admin::bootstrap(&app, "default", "admin", "admin@fedgate.local")
                .await
                .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?,
        )
    } else {
        None
    };
    // Subscribes before serving, so every later change on another replica is heard.
    let replication = replication::start(&app, log_end).await;
    tracing::debug!(ms = ms(), "start-up: replication started");
    let _ = rng_warmup.await;
    tracing::debug!(ms = ms(), "start-up: random generator seeded");
    Ok(Built {
        state: AppState(app),
        bootstrapped,
        audit_task,
        writes_task,
        _replication: replication,
    })
}

impl Built {
    /// Serves on `listener` (and `/metrics` on `--metrics-listen`, if set)
    /// until `shutdown` completes: then stops accepting, lets the requests in
    /// flight finish for up to `--shutdown-timeout` (closing what is left
    /// after that; see [`http::serve`]), and flushes the audit log.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let metrics =
            match self.state.config.metrics_listen {
                Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (--metrics-listen): {e}")
                })?),
                None => None,
            };
        self.serve_with(listener, metrics, shutdown).await
    }

    /// [`Built::serve`] with the metrics listener already bound (tests bind
    /// port 0 and read the address).
    pub async fn serve_with(
        self,
        listener: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use futures::FutureExt as _;
        let shutdown = shutdown.shared();
        let metrics_task = metrics.map(|l| {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, "metrics listening");
            }
            let app = http::metrics_router(self.state.clone());
            let stop = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stop).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let router = router(self.state.clone());
        tracing::debug!("start-up: router built");
        let grace = std::time::Duration::from_secs(self.state.config.shutdown_timeout_s);
        if !http::serve::serve(listener, router, shutdown, grace).await {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "requests still in flight after --shutdown-timeout; closing them"
            );
        }
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        self.state.audit.flush().await;
        drop(self.state);
        let tasks = async { tokio::join!(self.audit_task, self.writes_task) };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tasks).await;
        Ok(())
    }
}

/// `fedgate serve`: bind, open the store (bootstrapping an empty one and
/// printing its admin key once), serve until Ctrl-C / SIGTERM.
///
/// The port is bound first: a server that cannot listen must fail before it
/// creates an organization whose admin key would be printed and lost.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (--metrics-listen): {e}"))?,
        ),
        None => None,
    };
    let built = build(config).await?;
    if let Some(b) = &built.bootstrapped {
        println!(
            "fedgate: created organization \"{}\" with admin \"{}\".\nAdmin API key (shown once, store it now): {}",
            b.org, b.username, b.api_key
        );
    }
    if !built.state.config.bootstrap && built.state.store.count_orgs().await? == 0 {
        tracing::warn!(
            "the store has no organization and --no-bootstrap is set, so nobody can sign in; \
             create one with: fedgate bootstrap --database-url URL --org NAME --admin USERNAME --email EMAIL \
             (it prints the admin's API key), or start once without --no-bootstrap"
        );
    }
    tracing::info!(addr = %listener.local_addr()?, "fedgate listening");
    built.serve_with(listener, metrics, shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

//! Start-up wiring: open storage, start the actors, build and bind the HTTP server.
//!
//! [`start`] is what `main` runs and what integration tests run (on port 0), so tests exercise
//! exactly the production wiring.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{dev::ServerHandle, middleware, web, App, HttpServer};
use actors::cluster::ClusterSettings;
use actors::db::Db;
use actors::hub::{ChatSettings, Hub};
use actors::metrics::Metrics;
use actors::store::{MessageStore, MongoMessageStore, SqlMessageStore};
use anyhow::Context;
use schema::db::{Database, SqliteTuning};
use schema::Clock;
use utoipa_actix_web::AppExt;

use crate::config::{MessageBackend, Settings};
use crate::events::Events;
use crate::routes;
use crate::state::AppState;

/// A started node.
pub struct Running {
    /// The address the HTTP server listens on.
    pub addr: SocketAddr,
    /// Stops the HTTP server (gracefully with `stop(true)`).
    pub handle: ServerHandle,
    /// The shared state (tests reach the clock and the database through it).
    pub state: web::Data<AppState>,
    server: actix_web::dev::Server,
}

impl Running {
    /// Serves until the server is stopped.
    pub async fn wait(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Opens storage, applies migrations, starts actors and binds the HTTP server.
///
/// The returned server is not yet polled: call [`Running::wait`] (or spawn it).
pub async fn start(settings: Settings, clock: Clock) -> anyhow::Result<Running> {
    let db_settings = settings.database.clone();
    let database = tokio::task::spawn_blocking(move || -> anyhow::Result<Database> {
        let db = Database::open_tuned(
            &db_settings.url,
            db_settings.pool_size,
            Duration::from_secs(db_settings.connect_timeout_secs),
            SqliteTuning {
                wal_max_bytes: db_settings.sqlite_wal_max_mib << 20,
                synchronous: db_settings.sqlite_synchronous.into(),
            },
        )
        .with_context(|| format!("opening database {}", crate::config::mask_url(&db_settings.url)))?;
        if db_settings.run_migrations {
            let applied = db.migrate().context("applying migrations")?;
            for m in applied {
                log::info!("applied migration {m}");
            }
        }
        Ok(db)
    })
    .await??;
    let db = Db::start(database, settings.database.pool_size as usize);

    let store: Arc<dyn MessageStore> = match settings.messages.backend {
        MessageBackend::Sql => Arc::new(SqlMessageStore::new(db.clone())),
        MessageBackend::Mongodb => Arc::new(
            MongoMessageStore::connect(&settings.messages.mongodb_url, &settings.messages.mongodb_database)
                .await
                .with_context(|| {
                    format!("connecting to MongoDB at {}", crate::config::mask_url(&settings.messages.mongodb_url))
                })?,
        ),
    };

    let cost = settings.auth.bcrypt_cost;
    let dummy_hash = web::block(move || bcrypt::hash(crate::auth::new_token(), cost)).await??;

    let hub = Hub::start(
        db.clone(),
        store.clone(),
        clock.clone(),
        ChatSettings {
            recall_window: Duration::from_secs(settings.chat.recall_window_secs),
            conversation_idle: Duration::from_secs(settings.chat.conversation_idle_secs),
            node_id: settings.cluster.node_id.clone(),
            max_group_members: settings.chat.max_group_members,
            writer_lanes: settings.database.writer_lanes as usize,
            edit_window: Duration::from_secs(settings.chat.edit_window_secs),
            max_reactions_per_message: settings.chat.max_reactions_per_message,
        },
        ClusterSettings {
            redis_url: settings.cluster.redis_url.clone(),
            node_id: settings.cluster.node_id.clone(),
            heartbeat: Duration::from_secs(settings.cluster.heartbeat_secs),
            node_ttl: Duration::from_secs(settings.cluster.node_ttl_secs),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            namespace: settings.cluster.namespace.clone(),
            request_timeout: Duration::from_millis(settings.cluster.request_timeout_ms),
        },
        Arc::new(Metrics::default()),
    )
    .map_err(|e| anyhow::anyhow!("cluster.redis_url: {e}"))?;
    let events = Events::new(hub.sessions.clone().recipient(), hub.entities.clone());
    let throttle = crate::throttle::Throttle::new(&settings.throttle);
    let proxies =
        crate::proxy::TrustedProxies::new(&settings.server.trusted_proxies, &settings.server.client_ip_header);
    let blobs = crate::uploads::open_blobs(&settings.uploads)?;
    let vapid = crate::push::load_vapid(&settings.push, &db, clock.now_ms()).await.context("push: the VAPID key")?;
    let push = crate::push::PushService::start(
        settings.push.clone(),
        &settings.server.public_url,
        db.clone(),
        hub.clone(),
        clock.clone(),
        vapid,
    )?;
    let state = web::Data::new(AppState {
        settings: settings.clone(),
        db,
        store,
        clock,
        hub,
        events,
        dummy_hash,
        throttle,
        proxies,
        blobs,
        push,
    });

    let max_body = settings.server.max_body_bytes;
    let app_state = state.clone();
    let docs = web::Data::new(crate::openapi::Docs::build());
    let cors_on = !settings.server.cors_allowed_origins.is_empty();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(docs.clone())
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(routes::json_error))
            .app_data(web::PayloadConfig::default().limit(max_body))
            .app_data(web::QueryConfig::default().error_handler(routes::query_error))
            .app_data(web::PathConfig::default().error_handler(routes::path_error))
            .into_utoipa_app()
            .configure(routes::configure)
            .into_app()
            .default_service(web::to(routes::webapp::serve))
            // Innermost first: the address limits of login and registration, CORS (off when no
            // origin is configured), the security headers, and outermost the request id, the
            // client's address and the access log line (crate::middleware).
            .wrap(middleware::from_fn(crate::throttle::throttle_middleware))
            .wrap(middleware::Condition::new(cors_on, crate::middleware::cors(&app_state.settings.server)))
            .wrap(middleware::from_fn(crate::middleware::security_headers))
            .wrap(middleware::from_fn(crate::middleware::access_log))
    })
    .disable_signals()
    // Frames are small and latency-bound: no Nagle delay behind the peer's delayed ACK.
    .tcp_nodelay(true)
    .shutdown_timeout(settings.server.shutdown_timeout_secs);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    let server = server.bind(&settings.server.bind).with_context(|| format!("binding {}", settings.server.bind))?;
    let addr = server.addrs().first().copied().context("the server bound no address")?;
    state.hub.me.set_address(addr.to_string());
    let server = server.run();
    let handle = server.handle();
    crate::tasks::spawn_background(&state);
    crate::throttle::spawn_sweeper(&state);
    Ok(Running { addr, handle, state, server })
}

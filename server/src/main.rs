//! `im-server`: runs one IM-Server node.
//!
//! With no configuration it runs a single embedded node (SQLite under `./data/`, 127.0.0.1:8080).
//! `--config PATH` (or `IM_CONFIG`) adds a TOML file; `IM__SECTION__KEY` variables override both.

use std::path::PathBuf;

use clap::Parser;
use server::config::Settings;

/// Command line of `im-server`.
#[derive(Debug, Parser)]
#[command(name = "im-server", version, about = "IM-Server: an actor-model instant-messaging node")]
struct Cli {
    /// TOML configuration file (overrides IM_CONFIG).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            // The configuration names no format yet: text, like the default.
            server::logging::init(server::config::LogFormat::Text);
            log::error!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    server::logging::init(settings.log.format);
    log::info!("im-server {} starting with config {}", env!("CARGO_PKG_VERSION"), settings.masked());
    match actix_web::rt::System::new().block_on(run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let running = server::app::start(settings, schema::Clock::system()).await?;
    log::info!("listening on http://{}", running.addr);
    let handle = running.handle.clone();
    let hub = running.state.hub.clone();
    let grace = std::time::Duration::from_secs(running.state.settings.server.drain_grace_secs);
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        log::info!("shutdown signal received, draining");
        // Not ready any more, no new sessions; every client is told to reconnect (1012) and
        // catches up with `sync` on another node; the conversations owned here are handed over
        // (their owners finish their writes first: acks are only ever sent for durable
        // messages). Writes still queued are flushed.
        let n = hub.drain_self().await;
        log::info!("asked {n} sessions to reconnect");
        hub.writer.flush().await;
        // The listener stays open meanwhile: `/readyz` answers 503 `draining`, so load
        // balancers take the node out of rotation rather than meeting refused connections.
        if !grace.is_zero() {
            log::info!("serving 503 draining for {grace:?} before closing the listener");
            actix_web::rt::time::sleep(grace).await;
        }
        hub.leave_cluster().await;
        handle.stop(true).await;
    });
    running.wait().await?;
    log::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

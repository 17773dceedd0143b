//! The `hookd` command: parses the CLI, loads the configuration, sets up logging and calls
//! [`hookd::app::run`].

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookd::config::{Config, ServeArgs};

#[derive(Parser)]
#[command(name = "hookd", version, about = "Self-hosted webhook delivery engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and deliver webhooks.
    Serve(ServeArgs),
    /// Create or upgrade the database file, then exit.
    Migrate(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(Config::load(args)?).await,
            Command::Migrate(args) => {
                let config = Config::load(args)?;
                let (store, handle) = hookd::store::Store::open(&config.db, config.durability)?;
                drop(store);
                handle.close();
                println!("hookd: {} is up to date", config.db.display());
                Ok(())
            }
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    hookd::app::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

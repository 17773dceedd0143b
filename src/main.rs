//! The `hookd` command: parses the CLI, loads the configuration, sets up logging and calls
//! [`hookd::app::run`] (or one of the maintenance commands). Errors are printed as one line
//! with their causes, never as a backtrace.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hookd::config::{Config, Durability, ServeArgs};
use hookd::model::SignatureScheme;
use hookd::report::ErrorChain;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Parser)]
#[command(name = "hookd", version, about = "Self-hosted webhook delivery engine")]
struct Cli {
    /// Log lines as text or as JSON objects [default: text].
    #[arg(long, global = true, env = "HOOKD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and deliver webhooks.
    Serve(ServeArgs),
    /// Create or upgrade the database, then exit.
    Migrate(WriteArgs),
    /// Write a consistent copy of the database to a new file, while hookd serves.
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// The copy to write (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Check the database's integrity and schema version (exit 0 healthy, 1 not).
    Check(DbArgs),
    /// Copy a whole database into a new, empty one: SQLite to PostgreSQL or back (no hookd
    /// may serve either while it runs).
    Copy {
        /// The database to copy: a SQLite file, or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// The empty database to copy into: a SQLite file (created), or a postgres:// URL.
        #[arg(long)]
        to: String,
    },
    /// Print the control API's OpenAPI 3.1 document (as `GET /openapi.json` serves it).
    Openapi,
    /// Manage the operator token.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show hookd working: a temporary database, a verifying receiver, events delivered.
    Demo,
    /// Run a receiver that verifies hookd's signatures and prints each delivery.
    Receive {
        /// Address to listen on; point an endpoint at http://<address>/webhooks.
        #[arg(long, default_value = "127.0.0.1:9000", value_parser = hookd::config::parse_listen)]
        listen: std::net::SocketAddr,
        /// The endpoint's signing secret.
        #[arg(long)]
        secret: String,
        /// Its signature scheme.
        #[arg(long, default_value = "standard", value_parser = ["standard", "github"])]
        scheme: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Replace the operator token of a database file (hookd must be stopped); prints the new
    /// token once.
    Rotate(WriteArgs),
}

/// Which SQLite file a command that only reads it works on (backup, check).
#[derive(clap::Args)]
struct DbArgs {
    /// SQLite database file [default: ./hookd.db, or `db` in the config file].
    #[arg(long, env = "HOOKD_DB")]
    db: Option<PathBuf>,
    /// Config file [default: ./hookd.toml when present].
    #[arg(long, env = "HOOKD_CONFIG")]
    config: Option<PathBuf>,
}

impl DbArgs {
    fn load(self) -> anyhow::Result<Config> {
        Ok(Config::load(ServeArgs {
            db: self.db,
            config: self.config,
            ..ServeArgs::default()
        })?)
    }
}

/// Which database a command that writes to it works on (migrate, token rotate).
#[derive(clap::Args)]
struct WriteArgs {
    /// SQLite database file, or a postgres:// URL [default: ./hookd.db, or `db` in the
    /// config file].
    #[arg(long, env = "HOOKD_DB")]
    db: Option<PathBuf>,
    /// Commit durability of the writes the command makes [default: full].
    #[arg(long, env = "HOOKD_DURABILITY", value_enum)]
    durability: Option<Durability>,
    /// Config file [default: ./hookd.toml when present].
    #[arg(long, env = "HOOKD_CONFIG")]
    config: Option<PathBuf>,
}

impl WriteArgs {
    fn load(self) -> anyhow::Result<Config> {
        Ok(Config::load(ServeArgs {
            db: self.db,
            durability: self.durability,
            config: self.config,
            ..ServeArgs::default()
        })?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `HOOKD_LOG`: a level (`debug`) or targets with levels (`hookd=debug,hyper=info`).
    let (filter, unreadable) = match std::env::var("HOOKD_LOG") {
        Ok(text) => match text.parse::<Targets>() {
            Ok(filter) => (filter, None),
            Err(e) => (Targets::new().with_default(Level::INFO), Some((text, e))),
        },
        Err(_) => (Targets::new().with_default(Level::INFO), None),
    };
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr);
    match cli.log_format.unwrap_or(LogFormat::Text) {
        LogFormat::Json => logs.json().finish().with(filter).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(filter)
            .init(),
    }
    if let Some((text, e)) = unreadable {
        tracing::warn!(value = %text, error = %e, "HOOKD_LOG is not a level or a list of target=level; logging at info");
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hookd: {}", ErrorChain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async {
        match command {
            Command::Serve(args) => {
                serve(Config::load(args)?).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Migrate(args) => {
                let config = args.load()?;
                let (store, handle) = hookd::store::Store::open_any(&config.db, config.durability).await?;
                drop(store);
                handle.close();
                println!("hookd: {} is up to date", config.db.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::Backup { db, to } => {
                let config = db.load()?;
                hookd::db::backup(&config.db, &to)?;
                println!("hookd: wrote a copy of {} to {}", config.db.display(), to.display());
                Ok(ExitCode::SUCCESS)
            }
            Command::Check(args) => {
                let config = args.load()?;
                let report = hookd::store::check(&config.db)?;
                let db = config.db.display();
                if report.healthy() {
                    println!(
                        "hookd: {db} is healthy (schema version {} of {})",
                        report.schema_version, report.known_version
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                if report.schema_version > report.known_version {
                    println!(
                        "hookd: {db} was written by a newer hookd (schema version {}; this build knows up to {})",
                        report.schema_version, report.known_version
                    );
                }
                for problem in &report.problems {
                    println!("hookd: {db}: {problem}");
                }
                Ok(ExitCode::FAILURE)
            }
            Command::Copy { from, to } => {
                use hookd::copy::{Database, copy};
                let (from, to) = (Database::parse(&from), Database::parse(&to));
                let started = std::time::Instant::now();
                let copied = copy(&from, &to, |table, rows| {
                    eprintln!("hookd: copy: {table}: {rows} rows");
                })
                .await?;
                println!(
                    "hookd: copied {copied} rows from {from} to {to} in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Demo => {
                hookd::demo::run().await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Receive {
                listen,
                secret,
                scheme,
            } => {
                let scheme = match scheme.as_str() {
                    "github" => SignatureScheme::Github,
                    _ => SignatureScheme::Standard,
                };
                hookd::signing::check_secret(scheme, &secret)?;
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                let url = hookd::demo::receiver::url(listener.local_addr()?);
                println!("receiver: verifying {scheme:?} signatures at {url}");
                let print = |d: hookd::demo::receiver::Verified| {
                    println!("verified {}: {}", d.id, d.body);
                };
                hookd::demo::receiver::serve(listener, scheme, secret, Arc::new(print)).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Openapi => {
                let document = hookd::api::openapi::document();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&document).context("render the document")?
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Token(TokenCommand::Rotate(args)) => {
                let config = args.load()?;
                let (store, handle) = hookd::store::Store::open_any(&config.db, config.durability).await?;
                let token = store.rotate_operator_token().await;
                drop(store);
                tokio::task::spawn_blocking(move || handle.close()).await.ok();
                println!(
                    "hookd: the new operator token (shown once, stored hashed; the old one no longer works): {}",
                    token?
                );
                if hookd::store::is_postgres_url(&config.db) {
                    println!(
                        "hookd: hookd processes serving this database now take the new token when they restart"
                    );
                }
                Ok(ExitCode::SUCCESS)
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

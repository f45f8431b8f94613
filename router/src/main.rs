//! The `tributary` command.

mod cli_policy;
mod cli_snapshot;
mod cli_status;
mod cli_tail;
mod cli_up;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use router::config::AckMode;
use tracing_subscriber::EnvFilter;

/// Tributary: several SQLite databases behaving as one multi-master
/// database through a shared, totally ordered log, served over the
/// PostgreSQL wire protocol.
#[derive(Parser)]
#[command(name = "tributary", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster in one process on the embedded file log: N
    /// replicas (SQLite files) and M routers (PostgreSQL endpoints).
    /// Restarting on the same data directory resumes where it stopped.
    Up(UpArgs),
    /// Run one node of a multi-process cluster: one replica and, unless
    /// `[router] enabled = false`, one router, on the configured log
    /// (`[log] backend = "kafka"` for several machines). A restarted node
    /// resumes from its applied offset; a new node starts from the beginning.
    Node {
        /// Node configuration file (TOML; see tributary.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the log end and each replica's applied offset and lag, read
    /// through a running router.
    Status {
        /// Router to ask.
        #[arg(long, default_value = "127.0.0.1:5433")]
        router: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read the log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Write a consistent snapshot of the most advanced local replica into
    /// `<data-dir>/snapshots` (or `[snapshots] dir`), named after the log
    /// offset it covers, and keep the newest `[snapshots] keep`. New and
    /// rebuilt replicas start from the newest snapshot; file-log retention
    /// only removes segments a snapshot covers. Safe while the node runs.
    Snapshot {
        /// Node configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory (overrides the configuration's `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print a `[[router.auth.users]]` entry for NAME: the password (first
    /// line of standard input) as a SCRAM-SHA-256 verifier, the form
    /// PostgreSQL stores. The config then holds no password. Example:
    /// `read -rs PW && echo "$PW" | tributary passwd app >> node.toml`
    Passwd {
        /// User name clients log in as.
        name: String,
    },
    /// Check or apply a conflict-policy file.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file without starting anything: syntax, allowed
    /// values, and (when a replica file exists in --data-dir) table and
    /// column names and column types.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        /// Data directory whose replica schema to check against.
        #[arg(long, default_value = "./tributary-data")]
        data_dir: PathBuf,
    },
    /// Validate a policy file on a running router and append it to the log
    /// as the next policy version; every replica switches at that offset.
    Apply {
        /// The policy file (TOML).
        file: PathBuf,
        /// Router to send it to.
        #[arg(long, default_value = "127.0.0.1:5433")]
        router: String,
    },
}

#[derive(clap::Args)]
struct UpArgs {
    /// Node configuration file (TOML; see tributary.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Directory for the log and the replica files [config: data_dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of replicas [config: replicas; default 3].
    #[arg(long)]
    replicas: Option<usize>,
    /// Number of routers; router i listens on the --listen port + i
    /// [config: router.routers; default 1].
    #[arg(long)]
    routers: Option<usize>,
    /// Address of the first router [config: router.listen; default 127.0.0.1:5433].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Default ack mode: async, semi-sync or sync [config: replication.ack].
    #[arg(long, value_parser = parse_ack)]
    ack: Option<AckMode>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics [config: metrics.listen].
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Conflict-policy file; appended as a new policy version at start-up
    /// when it differs from the one in force [config: conflicts.policy].
    #[arg(long)]
    policy: Option<PathBuf>,
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print records as JSON lines (one record per line, in log order).
    Tail {
        /// Data directory of the node (its log is in <data-dir>/log).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Read the data directory and log settings from this config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// First offset to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep printing new records as they are appended.
        #[arg(long)]
        follow: bool,
        /// Wrap each record as {"offset": N, "record": {...}} (records format).
        #[arg(long)]
        offsets: bool,
        /// `records` (as stored) or `debezium` (one change event per row change).
        #[arg(long, value_enum, default_value = "records")]
        format: cli_tail::Format,
    },
    /// Publish the Debezium change-event view to per-table Kafka topics
    /// `<prefix>.<table>`, keyed by the primary key, with a tombstone after
    /// each delete. Runs until stopped; resumes where it left off.
    Publish {
        /// Node configuration with `[log] backend = "kafka"`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the publisher keeps its position.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Topic prefix.
        #[arg(long, default_value = "tributary")]
        prefix: String,
    },
}

fn parse_ack(s: &str) -> Result<AckMode, String> {
    s.parse()
        .map_err(|()| format!("allowed: {}", AckMode::ALLOWED))
}

fn passwd(name: &str) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password on standard input");
    let verifier = router::auth::Verifier::generate(password);
    println!("[[router.auth.users]]\nname = {name:?}\npassword = \"{verifier}\"");
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tokio_postgres=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Up(args) => cli_up::run(args).await,
            Command::Node { config } => cli_up::run_node(config).await,
            Command::Passwd { name } => passwd(&name),
            Command::Snapshot { config, data_dir } => {
                tokio::task::spawn_blocking(move || cli_snapshot::run(config, data_dir)).await?
            }
            Command::Status { router, json } => cli_status::run(&router, json).await,
            Command::Log {
                command:
                    LogCommand::Tail {
                        data_dir,
                        config,
                        from,
                        follow,
                        offsets,
                        format,
                    },
            } => cli_tail::run(data_dir, config, from, follow, offsets, format).await,
            Command::Log {
                command:
                    LogCommand::Publish {
                        config,
                        data_dir,
                        prefix,
                    },
            } => cli_tail::publish(config, data_dir, prefix).await,
            Command::Policy {
                command: PolicyCommand::Check { file, data_dir },
            } => cli_policy::check(&file, &data_dir),
            Command::Policy {
                command: PolicyCommand::Apply { file, router },
            } => cli_policy::apply(&file, &router).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `tributary` command: argument parsing only; each command lives in
//! `cli/`.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tributary::cli;

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
    Up(cli::up::Args),
    /// Run one node of a multi-process cluster: one replica and, unless
    /// `[router] enabled = false`, one router, on the configured log
    /// (`[log] backend = "kafka"` for several machines). A restarted node
    /// resumes from its applied offset; a new node starts from the beginning.
    Node(cli::node::Args),
    /// Show the log end and each replica's applied offset and lag, read
    /// through a running router.
    Status(cli::status::Args),
    /// Read the log.
    Log {
        #[command(subcommand)]
        command: cli::log::Command,
    },
    /// Write a consistent snapshot of the most advanced local replica into
    /// `<data-dir>/snapshots` (or `[snapshots] dir`), named after the log
    /// offset it covers, and keep the newest `[snapshots] keep`. New and
    /// rebuilt replicas start from the newest snapshot; file-log retention
    /// only removes segments a snapshot covers. Safe while the node runs.
    Snapshot(cli::snapshot::Args),
    /// Print a `[[router.auth.users]]` entry for NAME: the password (first
    /// line of standard input) as a SCRAM-SHA-256 verifier, the form
    /// PostgreSQL stores. The config then holds no password. Example:
    /// `read -rs PW && echo "$PW" | tributary passwd app >> node.toml`
    Passwd(cli::passwd::Args),
    /// Check that every replica holds the same rows at one log offset,
    /// through running routers; name the differing keys if not. Exit
    /// status: 0 identical, 1 divergent, 2 could not verify.
    Verify(cli::verify::Args),
    /// Check or apply a conflict-policy file.
    Policy {
        #[command(subcommand)]
        command: cli::policy::Command,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A dry run's replays would log every conflict they resolve: its
    // report is the output, so by default only warnings go to stderr.
    let quiet = matches!(
        &cli.command,
        Command::Policy {
            command: cli::policy::Command::DryRun { .. }
        }
    );
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(if quiet {
                "warn"
            } else {
                "info,tokio_postgres=warn"
            })
        }))
        .with_writer(std::io::stderr)
        .init();
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
    rt.block_on(async {
        match cli.command {
            Command::Up(args) => cli::up::run(args).await,
            Command::Node(args) => cli::node::run(args).await,
            Command::Status(args) => cli::status::run(args).await,
            Command::Log { command } => cli::log::run(command).await,
            Command::Snapshot(args) => cli::snapshot::run(args).await,
            Command::Passwd(args) => cli::passwd::run(args),
            Command::Policy { command } => cli::policy::run(command).await,
            Command::Verify(args) => {
                return match cli::verify::run(args).await {
                    Ok(true) => std::process::ExitCode::SUCCESS,
                    Ok(false) => std::process::ExitCode::from(1),
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        std::process::ExitCode::from(2)
                    }
                };
            }
        }
        .map_or_else(
            |e| {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            },
            |()| std::process::ExitCode::SUCCESS,
        )
    })
}

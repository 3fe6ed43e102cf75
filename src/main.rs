//! The `roomstate` binary: the command line, logging, then the engine.
//!
//! Exit codes (also in `roomstate --help`): 0 — stopped cleanly (SIGTERM, SIGINT or SIGHUP), or
//! `check-config` found the settings valid; 1 — the engine could not start (journal, store or
//! listen address) or failed while running; 2 — bad command line or settings.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use roomstate::{LogFormat, Settings};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: measured side by side, 0.9× the engine's CPU per
/// HTTP vote (the room thread and the journal's writer allocate per request and per event),
/// within the targets for memory per room and per socket (docs/benchmarks.md, "mimalloc
/// again").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Live debate chat rooms: in-memory room actors, a durable journal, write-back to SQL.
///
/// Settings come from the embedded defaults, then the file given with --config (or named by
/// ROOMSTATE_CONFIG), then ROOMSTATE__SECTION__KEY environment variables. See README.md.
#[derive(Parser)]
#[command(
    name = "roomstate",
    version,
    after_help = "Exit codes: 0 stopped cleanly (SIGTERM, SIGINT or SIGHUP drain first) or \
                  settings valid; 1 the engine could not start or failed; 2 bad command line or \
                  settings."
)]
struct Cli {
    /// A settings file (TOML), in place of ROOMSTATE_CONFIG.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (what `roomstate` alone does).
    Run,
    /// Check the merged settings and print them with every secret redacted; exit 0 if they are
    /// valid, 2 with the reason if not.
    CheckConfig,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are not errors.
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let file = cli
        .config
        .or_else(|| std::env::var_os("ROOMSTATE_CONFIG").map(PathBuf::from));
    if let Some(Command::CheckConfig) = cli.command {
        return match Settings::describe(file, std::env::vars().collect::<Vec<_>>()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("roomstate: {error}");
                ExitCode::from(2)
            }
        };
    }
    let loaded = match Settings::load_with(file) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("roomstate: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(loaded.log_format());
    let run = actix_web::rt::System::new().block_on(roomstate::run(loaded));
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roomstate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `roomstate` binary: load settings, set up logging, run the engine.

use std::process::ExitCode;

use roomstate::Settings;
use tracing_subscriber::EnvFilter;

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let loaded = match Settings::load() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("roomstate: {error}");
            return ExitCode::from(2);
        }
    };
    match roomstate::run(loaded).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roomstate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

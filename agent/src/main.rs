//! `weft-agent`: parses flags, sets up tracing, runs the agent until SIGINT/SIGTERM.
use clap::Parser;
use weft_agent::{AgentArgs, AgentConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    weft_obs::logging::init();
    let config = match AgentConfig::try_from(AgentArgs::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("weft-agent: {e}");
            std::process::exit(2);
        }
    };
    weft_agent::run(config, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! The render sandbox launcher on its own, for the engine's tests (`berth-agent` is the
//! launcher in production: it re-executes itself as `berth-agent __render-sandbox …`).

use std::process::ExitCode;

fn main() -> ExitCode {
    berth_engine::render::sandbox::run_launcher_if_requested().unwrap_or_else(|| {
        eprintln!(
            "usage: berth-render-sandbox {} --max-memory BYTES --max-cpu-seconds N -- PROGRAM [ARG…]",
            berth_engine::render::sandbox::LAUNCHER_ARG
        );
        ExitCode::from(2)
    })
}

//! Berth's engine: the pieces of the sync pipeline (fetch → render → guard rails → policy →
//! apply → report) that both `berth-operator` and `berth-agent` are built from.

pub mod cluster;
pub mod telemetry;

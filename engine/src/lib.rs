//! Berth's engine: the pieces of the sync pipeline (fetch → render → guard rails → policy →
//! apply → report) that both `berth-operator` and `berth-agent` are built from.

pub mod api;
pub mod apply;
pub mod check;
pub mod cluster;
pub mod guard;
pub mod http_server;
pub mod kinds;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod render;
pub mod report;
pub mod source;
pub mod telemetry;

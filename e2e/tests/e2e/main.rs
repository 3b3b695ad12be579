//! Berth's end-to-end suite, one test binary so every test shares one local control plane.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod agent;
mod audit;
mod control_plane;
mod operator;
mod policy;
mod provision;
mod support;
mod transport;
mod up;

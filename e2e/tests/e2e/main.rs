//! Berth's end-to-end suite, one test binary so every test shares one local control plane.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod admission;
mod agent;
mod agent_deployment;
mod agent_identity;
mod audit;
mod control_plane;
mod deploy;
mod evidence;
mod fetch_limits;
mod helm;
mod leader;
mod migration;
mod operator;
mod outage;
mod platform_only;
mod platform_policy;
mod policy;
mod provision;
mod support;
mod takeover;
mod tenancy;
mod transport;
mod up;
mod webhook;

//! The operator's controllers. Each is a pipeline: read the object → build the desired state
//! (pure, in `provision/`) → apply → status.

pub mod agents;
mod legacy;
pub mod platform;
pub mod tenant;

/// The field manager of everything the operator applies: distinct from the agent's
/// (`berth_engine::apply::FIELD_MANAGER`), so a tenant's repository can never take over the
/// fields of what the operator owns.
pub const FIELD_MANAGER: &str = "berth-operator";

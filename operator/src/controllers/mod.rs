//! The operator's controllers. Each is a pipeline: read the object → build the desired state
//! (pure, in `provision/`) → apply → status.

pub mod agents;
pub mod platform;
pub mod tenant;

//! Support for Berth's end-to-end tests: a real local control plane (started once per test
//! process, or reused), Kubernetes clients for it, and a namespace per test that is dumped on
//! failure and deleted afterwards.

mod control_plane;
mod namespace;

pub use control_plane::{ControlPlane, HarnessError, control_plane};
pub use namespace::{TestNamespace, in_namespace};

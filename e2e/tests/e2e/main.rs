//! Berth's end-to-end suite, one test binary so every test shares one local control plane.

mod control_plane;
mod support;

//! Limits enforced while a pack is received: a gix progress tree that counts the bytes read off
//! the wire, the objects the pack announces and indexes, and what they inflate to, and raises
//! the fetch's interrupt flag the moment one exceeds its bound, so gix stops reading and the
//! pack never lands in memory or on disk whole.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gix::odb::pack;
use gix::progress::{Count, Id, MessageLevel, NestedProgress, Progress, Step, StepShared, Unit};

/// Bounds on one fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackLimits {
    pub max_bytes: u64,
    pub max_objects: u64,
    pub max_inflated_bytes: u64,
}

/// Which bound a pack broke, and by how much it had when the fetch was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Bytes { limit: u64, received: u64 },
    Objects { limit: u64, count: u64 },
    Inflated { limit: u64, inflated: u64 },
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Bytes { limit, received } => write!(
                f,
                "the repository's pack exceeds {} (the fetch stopped after {})",
                human_bytes(limit),
                human_bytes(received)
            ),
            Self::Objects { limit, count } => write!(
                f,
                "the repository's pack holds {count} objects, more than the {limit} allowed"
            ),
            Self::Inflated { limit, inflated } => write!(
                f,
                "the repository's pack inflates to more than {} (the fetch stopped at {})",
                human_bytes(limit),
                human_bytes(inflated)
            ),
        }
    }
}

/// What a fetch received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub objects: u64,
}

struct Shared {
    limits: PackLimits,
    stop: AtomicBool,
    exceeded: Mutex<Option<Exceeded>>,
    bytes: AtomicU64,
    objects: AtomicU64,
}

/// The pack's progress tree. Clones share the counters and the stop flag.
#[derive(Clone)]
pub struct Meter {
    shared: Arc<Shared>,
    role: Role,
    /// This node's own count: the same kind of node may appear more than once (gix reuses
    /// the inflated-bytes id for a later decoding pass), and counts never add up across nodes.
    count: StepShared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Bytes of pack data read from the remote.
    PackBytes,
    /// Objects indexed; announced up front by the pack header.
    Objects,
    /// Bytes the objects inflate to while being indexed.
    Inflated,
    Other,
}

impl Role {
    fn of(id: Id) -> Self {
        if id == Id::from(pack::bundle::write::ProgressId::ReadPackBytes) {
            Self::PackBytes
        } else if id == Id::from(pack::index::write::ProgressId::IndexObjects) {
            Self::Objects
        } else if id == Id::from(pack::index::write::ProgressId::DecompressedBytes) {
            Self::Inflated
        } else {
            Self::Other
        }
    }
}

impl Meter {
    pub fn new(limits: PackLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                stop: AtomicBool::new(false),
                exceeded: Mutex::new(None),
                bytes: AtomicU64::new(0),
                objects: AtomicU64::new(0),
            }),
            role: Role::Other,
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The flag to hand gix as `should_interrupt`.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.shared.stop
    }

    /// Stops the fetch (the caller was interrupted).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// The first bound broken, if any.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.shared.exceeded.lock().ok().and_then(|e| *e)
    }

    pub fn received(&self) -> Received {
        Received {
            bytes: self.shared.bytes.load(Ordering::SeqCst),
            objects: self.shared.objects.load(Ordering::SeqCst),
        }
    }

    fn child(&self, id: Id) -> Self {
        Self {
            shared: self.shared.clone(),
            role: Role::of(id),
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn exceed(&self, what: Exceeded) {
        if let Ok(mut first) = self.shared.exceeded.lock() {
            first.get_or_insert(what);
        }
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Checks this node's new count against its bound.
    fn check(&self, count: u64) {
        let limits = &self.shared.limits;
        match self.role {
            Role::PackBytes => {
                self.shared.bytes.fetch_max(count, Ordering::SeqCst);
                if count > limits.max_bytes {
                    self.exceed(Exceeded::Bytes {
                        limit: limits.max_bytes,
                        received: count,
                    });
                }
            }
            Role::Objects => {
                self.shared.objects.fetch_max(count, Ordering::SeqCst);
                if count > limits.max_objects {
                    self.exceed(Exceeded::Objects {
                        limit: limits.max_objects,
                        count,
                    });
                }
            }
            Role::Inflated if count > limits.max_inflated_bytes => {
                self.exceed(Exceeded::Inflated {
                    limit: limits.max_inflated_bytes,
                    inflated: count,
                });
            }
            Role::Inflated | Role::Other => {}
        }
    }
}

impl Count for Meter {
    fn set(&self, step: Step) {
        self.count.store(step, Ordering::SeqCst);
        self.check(step as u64);
    }

    fn step(&self) -> Step {
        self.count.load(Ordering::SeqCst)
    }

    fn inc_by(&self, step: Step) {
        let now = self
            .count
            .fetch_add(step, Ordering::SeqCst)
            .saturating_add(step);
        self.check(now as u64);
    }

    fn counter(&self) -> StepShared {
        self.count.clone()
    }
}

impl Progress for Meter {
    fn init(&mut self, max: Option<Step>, _unit: Option<Unit>) {
        // The pack header announces how many objects follow: refuse before reading them.
        if let (Role::Objects, Some(announced)) = (self.role, max) {
            let limit = self.shared.limits.max_objects;
            if announced as u64 > limit {
                self.exceed(Exceeded::Objects {
                    limit,
                    count: announced as u64,
                });
            }
        }
    }

    fn set_name(&mut self, _name: String) {}

    fn name(&self) -> Option<String> {
        None
    }

    fn id(&self) -> Id {
        gix::progress::UNKNOWN
    }

    fn message(&self, _level: MessageLevel, _message: String) {}
}

impl NestedProgress for Meter {
    type SubProgress = Self;

    fn add_child(&mut self, _name: impl Into<String>) -> Self::SubProgress {
        self.child(gix::progress::UNKNOWN)
    }

    fn add_child_with_id(&mut self, _name: impl Into<String>, id: Id) -> Self::SubProgress {
        self.child(id)
    }
}

/// `bytes` for a message: whole MiB when exact, else MiB with one decimal, KiB or bytes.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB {
        format!("{:.1} KiB", bytes as f64 / KIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PackLimits = PackLimits {
        max_bytes: 1000,
        max_objects: 10,
        max_inflated_bytes: 5000,
    };

    fn node(root: &mut Meter, id: Id) -> Meter {
        root.add_child_with_id("x", id)
    }

    #[test]
    fn bytes_over_the_limit_stop_the_fetch() {
        let mut root = Meter::new(LIMITS);
        let mut bytes = node(
            &mut root,
            pack::bundle::write::ProgressId::ReadPackBytes.into(),
        );
        bytes.init(None, None);
        bytes.inc_by(600);
        bytes.inc_by(400);
        assert!(!root.stop_flag().load(Ordering::SeqCst));
        assert_eq!(root.exceeded(), None);
        bytes.inc_by(1);
        assert!(root.stop_flag().load(Ordering::SeqCst));
        assert_eq!(
            root.exceeded(),
            Some(Exceeded::Bytes {
                limit: 1000,
                received: 1001
            })
        );
        // The first bound broken is the one reported.
        let mut objects = node(
            &mut root,
            pack::index::write::ProgressId::IndexObjects.into(),
        );
        objects.init(Some(11), None);
        assert!(matches!(root.exceeded(), Some(Exceeded::Bytes { .. })));
        assert_eq!(root.received().bytes, 1001);
    }

    #[test]
    fn an_announced_object_count_over_the_limit_stops_before_any_is_read() {
        let mut root = Meter::new(LIMITS);
        let mut objects = node(
            &mut root,
            pack::index::write::ProgressId::IndexObjects.into(),
        );
        objects.init(Some(10), None);
        assert_eq!(root.exceeded(), None);
        objects.init(Some(11), None);
        assert_eq!(
            root.exceeded(),
            Some(Exceeded::Objects {
                limit: 10,
                count: 11
            })
        );
        assert!(root.stop_flag().load(Ordering::SeqCst));
    }

    #[test]
    fn counted_objects_and_inflated_bytes_are_bounded_per_node() {
        let mut root = Meter::new(LIMITS);
        let objects = node(
            &mut root,
            pack::index::write::ProgressId::IndexObjects.into(),
        );
        for _ in 0..10 {
            objects.inc();
        }
        assert_eq!(root.exceeded(), None);
        assert_eq!(root.received().objects, 10);
        objects.inc();
        assert!(matches!(
            root.exceeded(),
            Some(Exceeded::Objects { count: 11, .. })
        ));

        let mut root = Meter::new(LIMITS);
        let inflated = node(
            &mut root,
            pack::index::write::ProgressId::DecompressedBytes.into(),
        );
        // A later pass reusing the id counts on its own.
        let decoded = node(
            &mut root,
            pack::index::write::ProgressId::DecodedBytes.into(),
        );
        inflated.inc_by(4000);
        decoded.inc_by(4000);
        assert_eq!(root.exceeded(), None);
        inflated.set(5001);
        assert_eq!(
            root.exceeded(),
            Some(Exceeded::Inflated {
                limit: 5000,
                inflated: 5001
            })
        );
    }

    #[test]
    fn other_progress_is_ignored_and_stop_is_shared() {
        let mut root = Meter::new(LIMITS);
        let mut other = root.add_child("remote");
        other.inc_by(1 << 40);
        other.init(Some(1 << 40), None);
        let grandchild = other.add_child_with_id("x", *b"XXXX");
        grandchild.inc_by(1 << 40);
        assert_eq!(root.exceeded(), None);
        assert!(!root.stop_flag().load(Ordering::SeqCst));
        grandchild.stop();
        assert!(root.stop_flag().load(Ordering::SeqCst));
        assert_eq!(root.exceeded(), None);
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(human_bytes(64 * 1024 * 1024 + 8192), "64.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}

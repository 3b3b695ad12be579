//! How a webhook request ended, as a metrics label from a fixed set.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// How a webhook request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated; the tenant's agent was asked to reconcile (202).
    Accepted,
    /// An authenticated GitHub `ping` (200).
    Ping,
    /// Not authenticated, for whatever reason (401).
    Unauthorized,
    /// Over the global or the tenant's rate limit (429).
    RateLimited,
    /// Body over the limit (413).
    TooLarge,
    /// The body could not be read, or the API server failed (400, 408, 503).
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ping => "ping",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::Error => "error",
        }
    }
}

// By hand: the derive would write the variant names as they are (`RateLimited`), and the
// operator's labels are snake_case.
impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

/// The label set of the webhook request counter: `outcome="accepted"` and so on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    #[test]
    fn labels_are_snake_case() {
        let family = Family::<OutcomeLabel, Counter>::default();
        family
            .get_or_create(&OutcomeLabel {
                outcome: Outcome::RateLimited,
            })
            .inc();
        let mut registry = Registry::default();
        registry.register("webhook_requests", "", family);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"webhook_requests_total{outcome="rate_limited"} 1"#),
            "{text}"
        );
    }
}

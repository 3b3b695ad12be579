//! The checks every revision passes before anything of it is applied: render → guard rails →
//! policy. Shared by the agent's reconcile and `berth-agent check`.

use crate::guard::{self, Refusal, Scope, TenantContext};
use crate::manifest::{Manifest, ObjectRef};
use crate::policy::{PolicyBundle, PolicyError, Severity, Violation};
use crate::render::{
    self, Helm, Kustomize, RenderError, RenderLimits, Renderers, Sops, SourceFile,
};

/// Why a revision could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("rendering was interrupted: {0}")]
    Interrupted(String),
}

/// A rendered revision with every refusal and policy finding.
#[derive(Debug, Default)]
pub struct Checked {
    /// Every object, namespaces defaulted.
    pub manifests: Vec<Manifest>,
    pub refusals: Vec<Refusal>,
    /// Denies and warnings.
    pub violations: Vec<Violation>,
}

impl Checked {
    /// Whether any object is refused or denied, in which case nothing is applied.
    pub fn is_refused(&self) -> bool {
        !self.refusals.is_empty() || self.denies().next().is_some()
    }

    pub fn denies(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.finding.severity == Severity::Deny)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Violation> {
        self.violations
            .iter()
            .filter(|v| v.finding.severity == Severity::Warn)
    }
}

/// What the pipeline needs besides the revision and the policy bundle.
pub struct Checker {
    pub tenant: TenantContext,
    pub kustomize: Kustomize,
    /// helm, and the release a chart is rendered as.
    pub helm: Helm,
    /// sops and the tenant's key; `None` checks encrypted Secrets without decrypting them.
    pub sops: Option<Sops>,
    pub limits: RenderLimits,
}

impl Checker {
    /// Renders `path` of the revision's files and checks every object. `scope_of` tells
    /// namespaced kinds from cluster-scoped ones.
    pub async fn check(
        &self,
        policy: &PolicyBundle,
        files: Vec<SourceFile>,
        path: &str,
        revision: &str,
        scope_of: impl Fn(&ObjectRef) -> Scope,
    ) -> Result<Checked, CheckError> {
        let manifests = self.render(files, path).await?;
        self.check_rendered(policy, manifests, revision, scope_of)
            .await
    }

    /// Renders off the async runtime: kustomize is a child process and parsing is CPU work.
    pub async fn render(
        &self,
        files: Vec<SourceFile>,
        path: &str,
    ) -> Result<Vec<Manifest>, CheckError> {
        let renderers = Renderers {
            kustomize: self.kustomize.clone(),
            helm: self.helm.clone(),
            sops: self.sops.clone(),
        };
        let (limits, path) = (self.limits.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || render::render(&files, &path, &renderers, &limits))
            .await
            .map_err(|e| CheckError::Interrupted(e.to_string()))?
            .map_err(CheckError::from)
    }

    /// Guard rails, then policy on every object the guard rails let through.
    pub async fn check_rendered(
        &self,
        policy: &PolicyBundle,
        mut manifests: Vec<Manifest>,
        revision: &str,
        scope_of: impl Fn(&ObjectRef) -> Scope,
    ) -> Result<Checked, CheckError> {
        let refusals = guard::check(&mut manifests, &self.tenant, scope_of);
        let admitted: Vec<Manifest> = manifests
            .iter()
            .filter(|m| !refusals.iter().any(|r| r.object == m.reference))
            .cloned()
            .collect();
        let violations = policy.evaluate(&admitted, &self.tenant, revision).await?;
        Ok(Checked {
            manifests,
            refusals,
            violations,
        })
    }
}

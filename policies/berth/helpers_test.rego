# Fixtures shared by the test files: a compliant workload, ways to break it, and evaluation.
package berth_test

import data.berth

# The tenant as the agent describes it: its namespaces, the Ingress hosts the platform assigned
# to it and the namespaces it lets send traffic in.
tenant := {
	"name": "team-a",
	"namespaces": ["team-a", "team-a-jobs"],
	"hosts": ["shop.example.com", "*.team-a.example.com"],
	"allowFromNamespaces": ["monitoring"],
}

# A container that satisfies every rule of the library, under either profile.
good_container(name) := {
	"name": name,
	"image": "registry.example/team-a/app:1.2.3",
	"securityContext": {
		"allowPrivilegeEscalation": false,
		"runAsNonRoot": true,
		"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
		"seccompProfile": {"type": "RuntimeDefault"},
	},
	"resources": {
		"requests": {"cpu": "100m", "memory": "64Mi"},
		"limits": {"cpu": "1", "memory": "128Mi"},
	},
}

good_pod_spec := {"containers": [good_container("app")]}

# A Deployment in the tenant's namespace with the given pod spec.
deployment(spec) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "namespace": "team-a", "labels": {"app.kubernetes.io/name": "web"}},
	"spec": {"template": {"spec": spec}},
}

good_deployment := deployment(good_pod_spec)

# The good Deployment with its container changed (object.union merges nested objects).
deployment_with_container(patch) := deployment({"containers": [object.union(good_container("app"), patch)]})

# The good Deployment with its pod spec changed.
deployment_with_pod(patch) := deployment(object.union(good_pod_spec, patch))

# All findings for an object, with the given data.params.
findings(obj, params) := findings_for_tenant(obj, params, tenant)

# All findings for an object, with the given data.params and input.tenant.
findings_for_tenant(obj, params, t) := fs if {
	fs := berth.violations with input as {"object": obj, "tenant": t, "revision": "abc123", "encrypted": false}
		with data.params as params
}

# The parameters that select the restricted profile, on top of others.
restricted(params) := object.union(params, {"profile": "restricted"})

# Rule ids ("policy/rule") of findings.
ids(fs) := {concat("/", [f.policy, f.rule]) | some f in fs}

# Whether an object, with params, produces a finding of the rule.
fires(id, obj, params) if id in ids(findings(obj, params))

# The severities a rule's findings have.
severities(id, obj, params) := {f.severity | some f in findings(obj, params); concat("/", [f.policy, f.rule]) == id}

# Rule ids of the denies among findings.
denied(fs) := {concat("/", [f.policy, f.rule]) | some f in fs; f.severity == "deny"}

# The messages of a rule's findings.
messages(id, obj, params) := {f.message | some f in findings(obj, params); concat("/", [f.policy, f.rule]) == id}

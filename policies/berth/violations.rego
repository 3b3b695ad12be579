# The entrypoint the agent evaluates for every object of a revision: `violations`, a set of
# findings {policy, rule, severity, message}. A "deny" finding refuses the whole revision; a
# "warn" finding is reported and the object is applied.
#
# Rules do not add to `violations` directly: each area file (tenancy, pod_security, images,
# resources, services, labels, params) adds to `findings`, and `violations` applies the
# platform's overrides from data.params: `disabled_rules` drops findings, `warn_rules` turns a
# deny into a warn. Entries are rule ids "policy/rule", "policy/*" or "*".
#
# This library is compiled to WebAssembly and evaluated by opa-wasm, which implements fewer
# builtins than the opa CLI: messages are built with concat and format_int, never sprintf (no
# %q, no %v), and nothing here depends on the iteration order of a set or an object.
package berth

violations contains effective(f) if {
	some f in findings
	not selected(f, param_disabled_rules)
}

# A deny named by data.params.warn_rules is reported as a warn, and says so.
effective(f) := finding(f.policy, f.rule, "warn", msg) if {
	f.severity == "deny"
	selected(f, param_warn_rules)
	msg := concat("", [f.message, " (deny downgraded to warn by data.params.warn_rules)"])
} else := f

# Whether a finding is named by a list of rule ids ("policy/rule", "policy/*" or "*").
selected(f, ids) if {
	some id in ids
	id in {rule_id(f.policy, f.rule), concat("", [f.policy, "/*"]), "*"}
}

rule_id(policy, rule) := concat("/", [policy, rule])

finding(policy, rule, severity, message) := {
	"policy": policy,
	"rule": rule,
	"severity": severity,
	"message": message,
}

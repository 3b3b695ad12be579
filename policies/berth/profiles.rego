# Profiles: how strict the library is, chosen by data.params.profile ("baseline", the default,
# or "restricted"). Every rule has a level, and the profile turns the level into a severity:
#
#   level        under "baseline"   under "restricted"
#   baseline     deny               deny       what the Pod Security Standards' baseline profile
#                                              forbids, and Berth's tenancy and isolation rules
#   restricted   warn               deny       what only the restricted profile forbids, and the
#                                              hygiene rules (resources, pinned images, labels)
#   advisory     warn               warn       recommendations
#
# The tenant's namespaces carry Pod Security Admission labels to match (enforce=baseline and
# warn/audit=restricted by default, enforce=restricted under the restricted profile), so the
# gate and the API server never disagree about a pod.
package berth

profile_names := ["baseline", "restricted"]

level_severities := {
	"baseline": {"baseline": "deny", "restricted": "warn", "advisory": "warn"},
	"restricted": {"baseline": "deny", "restricted": "deny", "advisory": "warn"},
}

# The profile in force. A profile that is neither name is refused by params/valid-parameters
# (every object is denied until it is fixed); meanwhile the rules apply the stricter profile.
param_profile := p if {
	p := params.profile
	p in profile_names
} else := "baseline" if {
	value_at(params, "profile", null) == null
} else := "restricted"

# The severity of a finding of a rule of the given level, under the profile in force.
level_severity(level) := level_severities[param_profile][level]

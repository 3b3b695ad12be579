package berth_test

import data.berth

secret(fields) := object.union({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"}}, fields)

secret_findings(obj, encrypted) := fs if {
	fs := berth.violations with input as {"object": obj, "tenant": tenant, "revision": "abc123", "encrypted": encrypted}
		with data.params as {}
}

test_a_plaintext_secret_from_git_is_advised_against_once if {
	fs := [f | some f in secret_findings(secret({"data": {"a": "eA=="}, "stringData": {"b": "y"}}), false); f.rule == "encrypted-in-git"]
	count(fs) == 1
	fs[0].severity == "warn"
}

test_an_encrypted_secret_passes if {
	every f in secret_findings(secret({"data": {"a": "[redacted]"}}), true) {
		f.rule != "encrypted-in-git"
	}
}

test_admission_and_empty_secrets_are_not_judged if {
	every f in secret_findings(secret({"data": {"a": "eA=="}}), null) {
		f.rule != "encrypted-in-git"
	}
	every f in secret_findings(secret({"type": "kubernetes.io/tls"}), false) {
		f.rule != "encrypted-in-git"
	}
}

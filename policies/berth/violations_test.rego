package berth_test

import data.berth

deployment(container) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
	"spec": {"template": {"spec": {"containers": [container]}}},
}

rules(findings) := {f.rule | some f in findings}

test_pinned_unprivileged_container_passes if {
	count(berth.violations) == 0 with input as {"object": deployment({"name": "a", "image": "registry.example/app:1.2.3"})}
}

test_privileged_container_is_denied if {
	"no-privileged" in rules(berth.violations) with input as {"object": deployment({"name": "a", "image": "app:1", "securityContext": {"privileged": true}})}
}

test_latest_and_untagged_images_are_denied if {
	"pinned-image" in rules(berth.violations) with input as {"object": deployment({"name": "a", "image": "app:latest"})}
	"pinned-image" in rules(berth.violations) with input as {"object": deployment({"name": "a", "image": "registry:5000/app"})}
}

test_digest_pinned_image_passes if {
	not "pinned-image" in rules(berth.violations) with input as {"object": deployment({"name": "a", "image": "app@sha256:0123"})}
}

test_missing_name_label_warns if {
	some f in berth.violations with input as {"object": {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "app:1"}]}}}
	f.rule == "app-name-label"
	f.severity == "warn"
}

test_cronjob_containers_are_checked if {
	cron := {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "app"}]}}}}}}
	"pinned-image" in rules(berth.violations) with input as {"object": cron}
}

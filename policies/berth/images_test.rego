package berth_test

with_image(image) := deployment_with_container({"image": image})

# images/pinned-image

test_pinned_image_passes_tags_and_digests if {
	every image in [
		"registry.example/app:1.2.3",
		"app:1",
		"registry:5000/team/app:v2",
		"app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"registry:5000/app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"registry:5000/app:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	] {
		not fires("images/pinned-image", with_image(image), {})
	}
}

test_pinned_image_denies_untagged_and_latest if {
	every image in ["app", "app:", "registry:5000/app", "localhost:5000/team/app", "app@", "app:latest", "registry.example/app:LATEST"] {
		fires("images/pinned-image", with_image(image), {})
	}
	messages("images/pinned-image", with_image("registry:5000/app"), {}) == {"container app uses image registry:5000/app without a tag or digest"}
	messages("images/pinned-image", with_image("app:latest"), {}) == {"container app uses image app:latest with the mutable tag latest"}
}

test_pinned_image_checks_cron_job_containers if {
	cron := {"kind": "CronJob", "metadata": {"name": "c", "namespace": "team-a"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "app"}]}}}}}}
	fires("images/pinned-image", cron, {})
}

# images/allowed-registries

test_allowed_registries_passes_without_the_parameter if {
	not fires("images/allowed-registries", with_image("anything.example/app:1"), {})
	not fires("images/allowed-registries", with_image("anything.example/app:1"), {"allowed_registries": []})
}

test_allowed_registries_passes_listed_registries if {
	params := {"allowed_registries": ["registry.example", "ghcr.io/acme/", "docker.io/library/", "localhost:5000"]}
	every image in [
		"registry.example/team-a/app:1.2.3",
		"ghcr.io/acme/app:1",
		"nginx:1.27",
		"docker.io/library/nginx:1.27",
		"localhost:5000/app:1",
	] {
		not fires("images/allowed-registries", with_image(image), params)
	}
}

test_allowed_registries_matches_a_repository_entry if {
	params := {"allowed_registries": ["ghcr.io/acme/app"]}
	not fires("images/allowed-registries", with_image("ghcr.io/acme/app:1"), params)
	not fires("images/allowed-registries", with_image("ghcr.io/acme/app/sub:1"), params)
	fires("images/allowed-registries", with_image("ghcr.io/acme/application:1"), params)
}

test_allowed_registries_denies_other_registries if {
	params := {"allowed_registries": ["registry.example", "ghcr.io/acme/"]}
	every image in [
		"registry.example.evil.example/app:1",
		"ghcr.io/acmeevil/app:1",
		"ghcr.io/other/app:1",
		"nginx:1.27",
		"acme/app:1",
	] {
		fires("images/allowed-registries", with_image(image), params)
	}
	messages("images/allowed-registries", with_image("nginx:1.27"), params) == {"container app uses image nginx:1.27 (docker.io/library/nginx:1.27), which is not from an allowed registry (registry.example, ghcr.io/acme/)"}
}

# Image volumes (volumes[].image.reference) follow the same rules as container images.

image_volume(reference) := deployment_with_pod({"volumes": [{"name": "models", "image": {"reference": reference, "pullPolicy": "IfNotPresent"}}]})

test_image_volumes_pass_pinned_allowed_images if {
	obj := image_volume("registry.example/team-a/models:2024-06")
	not fires("images/pinned-image", obj, restricted({}))
	not fires("images/allowed-registries", obj, {"allowed_registries": ["registry.example"]})
}

test_image_volumes_follow_the_image_rules if {
	obj := image_volume("ghcr.io/other/models:latest")
	messages("images/pinned-image", obj, {}) == {"volume models uses image ghcr.io/other/models:latest with the mutable tag latest"}
	severities("images/pinned-image", obj, restricted({})) == {"deny"}
	messages("images/allowed-registries", obj, {"allowed_registries": ["registry.example"]}) == {"volume models uses image ghcr.io/other/models:latest (ghcr.io/other/models:latest), which is not from an allowed registry (registry.example)"}
	fires("images/pinned-image", image_volume(""), {})
	fires("images/pinned-image", deployment_with_pod({"volumes": [{"name": "models", "image": {}}]}), {})
}

test_pinned_image_is_a_restricted_rule if {
	severities("images/pinned-image", with_image("app:latest"), {}) == {"warn"}
	severities("images/pinned-image", with_image("app:latest"), restricted({})) == {"deny"}
	severities("images/allowed-registries", with_image("app:1"), {"allowed_registries": ["registry.example"]}) == {"deny"}
}

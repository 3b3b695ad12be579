# Images: from the registries the platform allows, and pinned to a version or a digest. Both
# rules cover the images of containers and of image volumes (volumes[].image.reference).
package berth

# Every image the pod runs or mounts, with how messages name its user ("container app",
# "volume models").
pod_images contains {"label": e.label, "image": str(value_at(e.container, "image", ""))} if {
	some e in pod_containers
}

pod_images contains {"label": label, "image": image} if {
	spec := pod_spec(input.object)
	some volume in array_at(spec, "volumes")
	value_at(volume, "image", null) != null
	label := concat("", ["volume ", str(value_at(volume, "name", "(unnamed)"))])
	image := str(value_at(object_at(volume, "image"), "reference", ""))
}

findings contains finding("images", "pinned-image", level_severity("restricted"), msg) if {
	some e in pod_images
	problem := unpinned(e.image)
	msg := concat("", [e.label, " uses image ", e.image, " ", problem])
}

findings contains finding("images", "allowed-registries", level_severity("baseline"), msg) if {
	count(param_allowed_registries) > 0
	some e in pod_images
	not registry_allowed(e.image)
	msg := concat("", [
		e.label, " uses image ", e.image, " (", normalized_image(e.image),
		"), which is not from an allowed registry (", concat(", ", param_allowed_registries), ")",
	])
}

# Why an image reference is not pinned; undefined if it is.
unpinned(image) := "without a tag or digest" if {
	not digest_pinned(image)
	not image_tag(image)
}

unpinned(image) := "with the mutable tag latest" if {
	not digest_pinned(image)
	lower(image_tag(image)) == "latest"
}

# A reference ending in a digest ("@sha256:…") names exactly one image, whatever its tag.
digest_pinned(image) if regex.match(`@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`, image)

# The tag is what follows the ":" in the last path component, before any digest (a registry
# port, "registry:5000/app", is not a tag). Undefined without a tag.
image_tag(image) := tag if {
	name := split(image, "@")[0]
	parts := split(name, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
	tag != ""
}

# The reference as the container runtime resolves it: Docker Hub images get their registry
# and, for official images, their "library/" namespace ("nginx:1" is
# "docker.io/library/nginx:1"). The first path component is a registry only if it has a "."
# or a ":" or is "localhost".
normalized_image(image) := concat("/", ["docker.io/library", image]) if {
	not contains(image, "/")
} else := concat("/", ["docker.io", image]) if {
	first := split(image, "/")[0]
	not contains(first, ".")
	not contains(first, ":")
	first != "localhost"
} else := image

# An image is allowed if its normalized reference starts with an entry of
# data.params.allowed_registries at a component boundary: "ghcr.io" and "ghcr.io/" allow
# "ghcr.io/x/y:1" but not "ghcr.io.evil.example/y:1"; "ghcr.io/acme/app" (a repository) also
# allows "ghcr.io/acme/app:1" and "ghcr.io/acme/app@sha256:…".
registry_allowed(image) if {
	ref := normalized_image(image)
	some entry in param_allowed_registries
	some prefix in allowed_prefixes(entry)
	startswith(ref, prefix)
}

allowed_prefixes(entry) := {entry} if endswith(entry, "/")

allowed_prefixes(entry) := {concat("", [entry, "/"])} if {
	not endswith(entry, "/")
	not contains(entry, "/")
}

allowed_prefixes(entry) := {concat("", [entry, sep]) | some sep in ["/", ":", "@"]} if {
	not endswith(entry, "/")
	contains(entry, "/")
}

# Resources: every container declares what it needs and what it may use, so quotas hold and
# the scheduler places pods sensibly. (Ephemeral containers may not declare resources.)
package berth

findings contains finding("resources", "requests-and-limits", level_severity("restricted"), msg) if {
	some e in pod_containers
	e.list != "ephemeralContainers"
	resources := object_at(e.container, "resources")
	missing := [concat(".", ["resources", section, name]) |
		some section in ["requests", "limits"]
		some name in ["cpu", "memory"]
		value_at(object_at(resources, section), name, null) == null
	]
	count(missing) > 0
	msg := concat("", [e.label, " does not set ", concat(", ", missing)])
}

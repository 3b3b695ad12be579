# Secrets: a Secret committed to Git in plaintext can be read by everyone who can read the
# repository, and stays in its history. input.encrypted says whether the Secret was committed
# encrypted with SOPS (false for every other object from Git; null at admission, where the
# question does not arise).
package berth

findings contains finding("secrets", "encrypted-in-git", level_severity("advisory"), msg) if {
	input.object.kind == "Secret"
	input.encrypted == false
	some field in ["data", "stringData"]
	count(value_at(input.object, field, {})) > 0
	msg := "Secret is committed to Git in plaintext: encrypt its data and stringData with SOPS (see the tenant guide)"
}

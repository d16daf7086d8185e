package dedup

// KeyPrefixFor is the default KeyPrefix for a namespace.
func KeyPrefixFor(namespace string) string { return "oncehook:" + namespace + ":" }

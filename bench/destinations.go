package bench

import (
	"fmt"
	"strings"
)

// FanoutDestinations are the fanout scenario's destinations unless
// RunConfig.Destinations says otherwise. Destination NAME delivers to the
// sink's path /NAME; scripts/bench.sh configures the receiver with
// DESTINATIONS=a,b,c and DESTINATION_<NAME>_URL=http://SINK/NAME.
var FanoutDestinations = []string{"a", "b", "c"}

// destinationEnv is the receiver's variable for destination name's URL:
// DESTINATION_<NAME>_URL, NAME upper-cased with '-' as '_'.
func destinationEnv(name string) string {
	return "DESTINATION_" + strings.ReplaceAll(strings.ToUpper(name), "-", "_") + "_URL"
}

// checkDestinations validates destination names as the receiver does:
// lowercase letters, digits, '-' and '_', each with its own variables.
func checkDestinations(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("fanout: no destination")
	}
	seen := map[string]string{}
	for _, n := range names {
		if n == "" || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return fmt.Errorf("destination %q: want lowercase letters, digits, '-' and '_'", n)
		}
		env := destinationEnv(n)
		if other, dup := seen[env]; dup {
			return fmt.Errorf("destinations %q and %q share %s", other, n, env)
		}
		seen[env] = n
	}
	return nil
}

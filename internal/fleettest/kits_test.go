package fleettest

import (
	"slices"
	"testing"

	"atelier/internal/fleet"
)

// A runtime added to the registry without a test kit would make every
// fleet test on it fail at its start: say so here, once.
func TestEveryRuntimeHasAKit(t *testing.T) {
	for _, name := range fleet.RuntimeNames() {
		if _, ok := kits[name]; !ok {
			t.Errorf("runtime %q has no test kit in fleettest", name)
		}
	}
	for name := range kits {
		if !slices.Contains(fleet.RuntimeNames(), name) {
			t.Errorf("fleettest has a kit for %q, which the registry does not have", name)
		}
	}
}

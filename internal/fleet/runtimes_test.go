package fleet_test

import (
	"slices"
	"testing"

	"atelier/internal/config"
	"atelier/internal/fleet"
)

// The configuration validates runtime names and the registry opens them:
// one list each, held equal here.
func TestRegistryMatchesConfig(t *testing.T) {
	if got := fleet.RuntimeNames(); !slices.Equal(got, config.Runtimes) {
		t.Errorf("registry %v, config.Runtimes %v: register the runtime in both", got, config.Runtimes)
	}
}

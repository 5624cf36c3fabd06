package local

import (
	"testing"

	"atelier/internal/sessions"
	"atelier/internal/sessions/runtimetest"
)

func TestConformance(t *testing.T) {
	// With a quota, as a fleet runs it by default.
	runtimetest.Run(t, func(t *testing.T) sessions.Runtime { return newRuntime(t, Options{HomeQuota: 1 << 30}) })
}

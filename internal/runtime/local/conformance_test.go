package local

import (
	"testing"

	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	// With a quota, as a fleet runs it by default.
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, Options{HomeQuota: 1 << 30}) })
}

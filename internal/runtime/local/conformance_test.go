package local

import (
	"testing"

	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, Options{}) })
}

package local

import (
	"atelier/internal/runtime"
	"testing"

	"atelier/internal/runtime/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) runtime.Runtime { return newRuntime(t, Options{}) })
}

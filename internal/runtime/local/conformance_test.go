package local

import (
	"testing"

	"atelier/internal/sessions"
	"atelier/internal/sessions/runtimetest"
)

func TestConformance(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) sessions.Runtime { return newRuntime(t, Options{}) })
}

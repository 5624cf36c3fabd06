package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"atelier/internal/apitype"
	"atelier/internal/tasks"
)

// jsonNames lists the JSON field names of struct type t.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// The task's wire types mirror the domain's: a field added to one and not
// the other would vanish from the API (or from the stored events) silently.
func TestTaskWireTypesMirrorTheDomain(t *testing.T) {
	for _, pair := range [][2]any{
		{tasks.Task{}, apitype.Task{}},
		{tasks.Event{}, apitype.TaskEvent{}},
		{tasks.Spec{}, apitype.TaskSpec{}},
		{tasks.ActionResult{}, apitype.TaskActionResult{}},
	} {
		domain, wire := reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1])
		if d, w := jsonNames(domain), jsonNames(wire); !slices.Equal(d, w) {
			t.Errorf("%v has JSON fields %v, %v has %v: convert the new field at the boundary (api/tasks.go)", domain, d, wire, w)
		}
	}
}

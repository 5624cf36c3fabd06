package agentapi_test

import (
	"testing"

	"atelier/internal/agentapi"
)

func TestParseRegion(t *testing.T) {
	g, err := agentapi.ParseRegion(" 10, 20,300,200")
	if err != nil || g != (agentapi.Region{X: 10, Y: 20, Width: 300, Height: 200}) {
		t.Errorf("ParseRegion = %+v, %v", g, err)
	}
	for _, bad := range []string{"", "1,2,3", "1,2,3,4,5", "a,2,3,4", "-1,0,10,10", "0,0,0,10", "0,0,10,0", "0,0,99999,10", "1.5,0,10,10"} {
		if g, err := agentapi.ParseRegion(bad); err == nil {
			t.Errorf("ParseRegion(%q) = %+v, want an error", bad, g)
		}
	}
}

// FuzzParseRegion checks a region read is one String writes back the
// same, with a positive size and no negative corner.
func FuzzParseRegion(f *testing.F) {
	for _, s := range []string{"0,0,1,1", "10,20,300,200", "1,2,3", "-1,0,1,1", " 4 ,5,6,7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := agentapi.ParseRegion(s)
		if err != nil {
			return
		}
		if g.X < 0 || g.Y < 0 || g.Width <= 0 || g.Height <= 0 {
			t.Fatalf("ParseRegion(%q) = %+v", s, g)
		}
		if again, err := agentapi.ParseRegion(g.String()); err != nil || again != g {
			t.Fatalf("%q read back as %+v, %v; want %+v", g.String(), again, err, g)
		}
	})
}

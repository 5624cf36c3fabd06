package agentapi

import (
	"fmt"
	"strconv"
	"strings"
)

// String writes g as the API's region parameter takes it: x,y,width,height.
func (g Region) String() string {
	return fmt.Sprintf("%d,%d,%d,%d", g.X, g.Y, g.Width, g.Height)
}

// ParseRegion reads x,y,width,height (as String writes it): a corner at or
// right of and below the origin, and a positive size. Whether it lies
// within an output is CheckBounds's to say.
func ParseRegion(s string) (Region, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return Region{}, fmt.Errorf("region %q: want x,y,width,height", s)
	}
	var n [4]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 || v > 1<<16 {
			return Region{}, fmt.Errorf("region %q: want four whole numbers, x,y,width,height, from 0 to 65536", s)
		}
		n[i] = v
	}
	g := Region{X: n[0], Y: n[1], Width: n[2], Height: n[3]}
	if g.Width == 0 || g.Height == 0 {
		return Region{}, fmt.Errorf("region %q: width and height must be positive", s)
	}
	return g, nil
}

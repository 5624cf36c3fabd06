package sessions

import (
	"context"
	"fmt"

	"atelier/internal/homefiles"
	"atelier/internal/runtime"
)

// Home opens a running session's home for the file API; the caller closes
// it. Paths in it resolve beneath its root, never through links.
func (m *Manager) Home(ctx context.Context, id string) (homefiles.Files, error) {
	if _, err := m.running(ctx, id); err != nil {
		return nil, err
	}
	if rh, ok := m.rt.(runtime.RemoteHome); ok {
		f, err := rh.HomeFiles(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
		}
		return f, nil
	}
	hd, err := m.rt.Home(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
	}
	h, err := homefiles.Open(hd.Path, hd.UID, hd.GID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
	}
	return h, nil
}

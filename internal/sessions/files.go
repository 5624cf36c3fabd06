package sessions

import (
	"context"
	"fmt"

	"atelier/internal/homefiles"
)

// remoteHome is a runtime whose homes are on no host the fleet opens (its
// Home answers errors.ErrUnsupported, as kube's): it performs the file
// API's operations itself, beneath the home as homefiles confines them.
type remoteHome interface {
	HomeFiles(ctx context.Context, id string) (homefiles.Files, error)
}

// Home opens a running session's home for the file API; the caller closes
// it. Paths in it resolve beneath its root, never through links.
func (m *Manager) Home(ctx context.Context, id string) (homefiles.Files, error) {
	if _, err := m.running(ctx, id); err != nil {
		return nil, err
	}
	if rh, ok := m.rt.(remoteHome); ok {
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

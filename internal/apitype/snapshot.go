package apitype

import "time"

// Codes of the snapshot routes.
const (
	CodeSnapshotInUse = "snapshot_in_use" // a session is being created from it
	CodeBadSnapshot   = "bad_snapshot"    // an archive refused as unsafe or corrupt
)

// Snapshot is a snapshot of a session's home (and, on docker, its image).
type Snapshot struct {
	ID        string    `json:"id"`
	SessionID string    `json:"session_id"`
	Runtime   string    `json:"runtime"`
	CreatedAt time.Time `json:"created_at"`
	// Size and SHA256 are those of the gzipped home archive.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Files  int    `json:"files"`
	Image  string `json:"image,omitempty"`
}

// SnapshotList is the body of GET /snapshots.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
}

// EmbedToken is the body of POST /sessions/{id}/embed-token: mode is view
// or control; 0 seconds means the fleet's default lifetime.
type EmbedToken struct {
	Mode       string `json:"mode"`
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

// EmbedLink is the answer of POST /sessions/{id}/embed-token.
type EmbedLink struct {
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	Mode      string    `json:"mode"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Actions of POST /sessions/{id}/embed/control.
const (
	EmbedTakeOver = "takeover"
	EmbedHandBack = "handback"
)

// EmbedControl is the body of POST /sessions/{id}/embed/control (the live
// view's page): {"action":"takeover","viewer":id} answers with a Lease,
// {"action":"handback","lease_id":id,"message":text} with a ControlState.
type EmbedControl struct {
	Action  string `json:"action"`
	Viewer  string `json:"viewer"`
	LeaseID string `json:"lease_id"`
	Message string `json:"message"`
}

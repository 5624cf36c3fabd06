package config

import (
	"fmt"
	"strconv"
	"time"

	"atelier/internal/audit"
)

// Audit and record-keeping environment variables.
const (
	EnvAuditSync        = "ATELIER_AUDIT_SYNC"         // always | interval | never
	EnvAuditRedactTyped = "ATELIER_AUDIT_REDACT_TYPED" // true: keep only the length and hash of typed text
	EnvStepRetention    = "ATELIER_STEP_RETENTION"     // how long task step screenshots are kept
)

// Records configures what the fleet keeps: the audit log and the task step
// screenshots.
type Records struct {
	AuditSync        audit.SyncPolicy
	AuditRedactTyped bool
	// StepRetention is how long step screenshots are kept (default 7 days).
	StepRetention time.Duration
}

func loadRecords(getenv func(string) string) (Records, error) {
	r := Records{StepRetention: 7 * 24 * time.Hour}
	if v := getenv(EnvAuditSync); v != "" {
		p, err := audit.ParseSyncPolicy(v)
		if err != nil {
			return Records{}, fmt.Errorf("%s: %w", EnvAuditSync, err)
		}
		r.AuditSync = p
	}
	if v := getenv(EnvAuditRedactTyped); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Records{}, fmt.Errorf("%s=%q: want true or false", EnvAuditRedactTyped, v)
		}
		r.AuditRedactTyped = b
	}
	if v := getenv(EnvStepRetention); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Records{}, fmt.Errorf("%s=%q: want a positive duration such as 72h", EnvStepRetention, v)
		}
		r.StepRetention = d
	}
	return r, nil
}

package config

import (
	"testing"
	"time"

	"atelier/internal/audit"
)

func TestLoadRecords(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	r, err := loadRecords(getenv)
	if err != nil || r.AuditSync != audit.SyncAlways || r.AuditRedactTyped || r.StepRetention != 7*24*time.Hour {
		t.Fatalf("defaults = %+v, %v; want fsync always, no redaction, 7 days", r, err)
	}
	env = map[string]string{EnvAuditSync: "never", EnvAuditRedactTyped: "true", EnvStepRetention: "72h"}
	r, err = loadRecords(getenv)
	if err != nil || r.AuditSync != audit.SyncNever || !r.AuditRedactTyped || r.StepRetention != 72*time.Hour {
		t.Fatalf("set = %+v, %v", r, err)
	}
	for k, v := range map[string]string{EnvAuditSync: "sometimes", EnvAuditRedactTyped: "maybe", EnvStepRetention: "-1h"} {
		if _, err := loadRecords(func(key string) string {
			if key == k {
				return v
			}
			return ""
		}); err == nil {
			t.Errorf("%s=%q: accepted", k, v)
		}
	}
}

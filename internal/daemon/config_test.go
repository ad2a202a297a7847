package daemon

import (
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/agentapi"
)

func TestValidateLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		wantDisk int64
		wantErr  string
	}{
		{"defaults", Config{}, DefaultDiskMB, ""},
		{"no quota", Config{DiskMB: -1}, 0, ""},
		{"small quota", Config{DiskMB: 16}, 16, ""},
		{"quota too small", Config{DiskMB: 15}, 0, "--disk-mb 15"},
		{"quota too big", Config{DiskMB: 1 << 30}, 0, "--disk-mb"},
		{"negative sandboxes", Config{MaxSandboxes: -1}, 0, "--max-sandboxes"},
		{"uid base", Config{UIDBase: 1 << 30}, DefaultDiskMB, ""},
		{"uid base among host users", Config{UIDBase: 1000}, 0, "--uid-base 1000"},
		{"uid base without a range", Config{UIDBase: 1<<32 - 1<<16}, 0, "--uid-base"},
		{"processes", Config{AgentLimits: agentapi.Limits{Processes: 3}}, DefaultDiskMB, ""},
		{"negative processes", Config{AgentLimits: agentapi.Limits{Processes: -1}}, 0, "--max-processes -1"},
		{"too many sessions", Config{AgentLimits: agentapi.Limits{Sessions: 1 << 20}}, 0, "--max-sessions"},
		{"negative contexts", Config{AgentLimits: agentapi.Limits{Contexts: -5}}, 0, "--max-contexts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validateLimits()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one about %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.cfg.DiskMB != tc.wantDisk {
				t.Errorf("DiskMB = %d, want %d", tc.cfg.DiskMB, tc.wantDisk)
			}
		})
	}
}

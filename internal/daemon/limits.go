package daemon

import (
	"fmt"

	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// DefaultDiskMB is a sandbox's disk quota unless the daemon or the sandbox
// says otherwise: 10 GiB, in a sparse file that takes host space only for
// what the sandbox writes.
const DefaultDiskMB = 10 << 10

// maxDiskMB bounds --disk-mb (16 TiB, as per sandbox).
const maxDiskMB = 1 << 24

// MaxHeaderBytes bounds a request's header lines (and the request line):
// 64 KiB, room for long preview URLs and tokens, far below the net/http
// default of 1 MiB. Past it the server answers 431.
const MaxHeaderBytes = 64 << 10

// validateLimits checks the per-sandbox limits of c and fills in the
// disk quota's default.
func (c *Config) validateLimits() error {
	switch {
	case c.DiskMB == 0:
		c.DiskMB = DefaultDiskMB
	case c.DiskMB < 0:
		c.DiskMB = 0 // the manager's "none"
	case c.DiskMB < runtime.MinDiskMB || c.DiskMB > maxDiskMB:
		return fmt.Errorf("--disk-mb %d: want %d to %d (0: no quota)", c.DiskMB, runtime.MinDiskMB, maxDiskMB)
	}
	// Room for one range at least, above host users (as the runtime
	// wants); zero is the manager's default.
	if c.UIDBase != 0 && (c.UIDBase < runtime.IDMapSize || uint64(c.UIDBase)+2*runtime.IDMapSize > 1<<32-1) {
		return fmt.Errorf("--uid-base %d: want %d to %d (0: %d)", c.UIDBase, runtime.IDMapSize, uint64(1)<<32-1-2*runtime.IDMapSize, manager.DefaultUIDBase)
	}
	if c.MaxSandboxes < 0 {
		return fmt.Errorf("--max-sandboxes %d: must not be negative", c.MaxSandboxes)
	}
	if err := c.AgentLimits.Validate(); err != nil {
		return fmt.Errorf("--%w", err)
	}
	return nil
}

package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/preview"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
)

// Config is sandboxd's configuration (its flags).
type Config struct {
	Listen        string // API address, default 127.0.0.1:8787
	DataDir       string // default /var/lib/sandboxd
	ImagesDir     string // default DataDir/images
	Token         string // API token; empty: read or generate DataDir/token
	PreviewDomain string // default localhost
	// TrustedProxies are addresses or CIDRs of proxies in front of the
	// daemon (a TLS terminator) whose X-Forwarded-* headers preview
	// traffic and preview URLs believe (internal/preview).
	TrustedProxies []string
	AgentBinary    string // default: sandbox-agent beside this executable
	Runc           string // runc binary, default from PATH
	// MaxOutputBytes caps each output stream of exec kept in memory.
	MaxOutputBytes int
	// MaxSandboxes bounds the number of sandboxes; past it, creating one
	// is 429 RESOURCE_EXHAUSTED. Zero: as many as the uid space holds.
	MaxSandboxes int
	// UIDBase is the first host uid of the sandboxes' uid ranges (65536
	// each, from here up; manager.Config.UIDBase). Records keep slots, not
	// uids, so it must stay the same for the life of a data directory; two
	// daemons on one host need ranges of their own. Zero:
	// manager.DefaultUIDBase.
	UIDBase uint32
	// DiskMB is the disk quota of a sandbox created without one
	// (resources.diskMB): its files live in a sparse ext4 file of this
	// size. Zero: DefaultDiskMB; negative: no quota unless the sandbox
	// asks for one (its files then share the host's disk).
	DiskMB int64
	// AgentLimits bound each sandbox's processes, sessions and code
	// contexts (429 past them); zero fields get the agent's defaults.
	AgentLimits agentapi.Limits
	// WarmPool is the fewest sandboxes of the default image kept started
	// ahead, so that a new ID's first call claims one in a few
	// milliseconds. Zero: no pool.
	WarmPool int
	// WarmPoolMax is the most the pool grows to while creates come
	// faster than it holds (at most WarmPool: a fixed size), and
	// WarmPoolMemoryMB the memory all pooled sandboxes may take (zero: no
	// bound but WarmPoolMax).
	WarmPoolMax      int
	WarmPoolMemoryMB int64
	// Bridge configures network mode bridge.
	Bridge BridgeConfig
	// Ready, if set, receives the API's address once it accepts requests.
	Ready func(addr string)
	// Out receives the start-up banner (address and token); nil: none.
	Out    io.Writer
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8787"
	}
	if c.DataDir == "" {
		c.DataDir = "/var/lib/sandboxd"
	}
	if c.ImagesDir == "" {
		c.ImagesDir = filepath.Join(c.DataDir, "images")
	}
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = agentapi.DefaultMaxOutputBytes
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.AgentBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		c.AgentBinary = filepath.Join(filepath.Dir(exe), "sandbox-agent")
	}
	return nil
}

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

// BridgeConfig configures network mode bridge (docs/OPERATIONS.md): the
// bridge the daemon owns, the sandboxes' address range, what of the host
// they may reach and their nameservers. Zero fields get the defaults.
type BridgeConfig struct {
	// Name is the bridge's interface name and its nftables table's
	// (default runc.DefaultBridgeName, sandboxd0).
	Name string
	// CIDR is the sandboxes' IPv4 range, a /16 or larger (default
	// runc.DefaultBridgeCIDR, 10.89.0.0/16).
	CIDR string
	// HostPorts lists the host's ports that bridge sandboxes may reach,
	// comma-separated PORT or PORT/tcp or PORT/udp; empty: none.
	HostPorts string
	// DNS lists nameservers (IPv4, comma-separated) for bridge sandboxes'
	// resolv.conf; empty: the host's.
	DNS string
}

// runc turns the configuration into the runtime's.
func (c BridgeConfig) runc() (runc.BridgeConfig, error) {
	out := runc.BridgeConfig{Name: c.Name, CIDR: c.CIDR}
	ports, err := runc.ParseHostPorts(c.HostPorts)
	if err != nil {
		return out, fmt.Errorf("bridge host ports: %w", err)
	}
	out.HostPorts = ports
	for _, f := range strings.Split(c.DNS, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || !a.Is4() {
			return out, fmt.Errorf("bridge DNS %q: want IPv4 addresses", f)
		}
		out.Nameservers = append(out.Nameservers, a)
	}
	return out, nil
}

// previewConfig turns the preview flags into the API's configuration:
// the domain, the trusted proxies (each an address or a CIDR), and the
// ports that may not be exposed (the daemon's own listen port).
func (c *Config) previewConfig() (pc preview.Config, reserved []int, err error) {
	pc.Domain = c.PreviewDomain
	for _, s := range c.TrustedProxies {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return pc, nil, fmt.Errorf("trusted proxy %q: want an address or a CIDR", f)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			pc.TrustedProxies = append(pc.TrustedProxies, p.Masked())
		}
	}
	if _, port, err := net.SplitHostPort(c.Listen); err == nil {
		if n, err := strconv.Atoi(port); err == nil && n > 0 {
			reserved = append(reserved, n)
		}
	}
	return pc, reserved, nil
}

package runc

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// Network mode bridge (docs/OPERATIONS.md, Network): the daemon makes
// each bridge sandbox's network namespace (network_ns.go), so the sandbox's
// root, whose user namespace does not own it, cannot change its addresses,
// routes or firewall. Its eth0's peer is an isolated port of the daemon's
// bridge (network_bridge.go), whose nftables table masquerades the
// sandboxes' traffic and drops what a sandbox sends to another sandbox, to
// the host or to link-local addresses (network_nft.go).

// Defaults of BridgeConfig.
const (
	DefaultBridgeName = "sandboxd0"
	DefaultBridgeCIDR = "10.89.0.0/16"
)

// BridgeConfig configures network mode bridge. The zero value gets the
// defaults.
type BridgeConfig struct {
	// Name is the bridge's interface name, and the name of the nftables
	// table (family inet) that the runtime owns (default sandboxd0).
	Name string
	// CIDR is the sandboxes' IPv4 range (default 10.89.0.0/16): the
	// bridge has its first address, each sandbox the one numbered
	// UIDBase/IDMapSize. It must hold at least a /16, which holds every
	// possible uid range.
	CIDR string
	// HostPorts are the host's ports that sandboxes may reach (on any of
	// the host's addresses); by default none.
	HostPorts []HostPort
	// Nameservers are written to bridge sandboxes' /etc/resolv.conf.
	// Empty: the host's own (see hostNameservers).
	Nameservers []netip.Addr
}

// HostPort is a port of the host that bridge sandboxes may reach.
type HostPort struct {
	Proto string // "tcp" or "udp"
	Port  uint16
}

func (p HostPort) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Proto) }

// ParseHostPorts parses a comma-separated list of PORT or PORT/PROTO
// (tcp, the default, or udp), as in "5432,53/udp".
func ParseHostPorts(s string) ([]HostPort, error) {
	var out []HostPort
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		port, proto, _ := strings.Cut(f, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || (proto != "tcp" && proto != "udp") {
			return nil, fmt.Errorf("host port %q: want PORT or PORT/tcp or PORT/udp, 1-65535", f)
		}
		out = append(out, HostPort{Proto: proto, Port: uint16(n)})
	}
	return out, nil
}

// bridgeNet is the runtime's bridge network: a validated BridgeConfig, and
// the bridge (with its firewall), set up once per Runtime and looked up on
// every bridge sandbox's start (network_bridge.go).
type bridgeNet struct {
	name        string
	prefix      netip.Prefix // masked
	gateway     netip.Addr
	hostPorts   []HostPort
	nameservers []netip.Addr
	log         *slog.Logger

	mu    sync.Mutex
	ready bool // the bridge, its address, nftables table and ip_forward are in place; guarded by mu
}

func newBridgeNet(c BridgeConfig, log *slog.Logger) (*bridgeNet, error) {
	if c.Name == "" {
		c.Name = DefaultBridgeName
	}
	if c.CIDR == "" {
		c.CIDR = DefaultBridgeCIDR
	}
	if len(c.Name) > 15 || strings.ContainsAny(c.Name, "/ \t\n\x00") {
		return nil, fmt.Errorf("bridge name %q: want at most 15 characters, no '/' or spaces", c.Name)
	}
	p, err := netip.ParsePrefix(c.CIDR)
	if err != nil || !p.Addr().Is4() || p.Bits() > 16 || p.Bits() < 1 {
		return nil, fmt.Errorf("bridge CIDR %q: want an IPv4 prefix of /16 or larger, like %s", c.CIDR, DefaultBridgeCIDR)
	}
	p = p.Masked()
	for _, ns := range c.Nameservers {
		if !ns.Is4() {
			return nil, fmt.Errorf("bridge nameserver %s: sandboxes have IPv4 only", ns)
		}
	}
	return &bridgeNet{name: c.Name, prefix: p, gateway: p.Addr().Next(), hostPorts: c.HostPorts, nameservers: c.Nameservers, log: log}, nil
}

// addr returns the address of the sandbox whose uid range starts at
// uidBase: the prefix's address number uidBase/IDMapSize. Distinct uid
// ranges (IDMapSize each, not overlapping) give distinct numbers below
// 2^16, so within a /16 or larger prefix no two sandboxes share one.
func (b *bridgeNet) addr(uidBase uint32) (netip.Addr, error) {
	n := uidBase / runtime.IDMapSize
	size := uint64(1) << (32 - b.prefix.Bits())
	if n < 2 || uint64(n) >= size-1 { // 0: network, 1: gateway, last: broadcast
		return netip.Addr{}, fmt.Errorf("%w: uid base %d gives no address in %s", errdefs.ErrInvalidArgument, uidBase, b.prefix)
	}
	a := b.prefix.Addr().As4()
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])+n)
	return netip.AddrFrom4(a), nil
}

// vethName is the host-side name of sandbox id's veth for a Runtime whose
// Config.Dir is dir: short enough for an interface name (15 bytes), and
// distinct per data directory like the cgroup path.
func vethName(dir, id string) string {
	dir, _ = filepath.Abs(dir)
	sum := sha256.Sum256([]byte(dir + "\x00" + id))
	return "sd" + hex.EncodeToString(sum[:])[:13]
}

// hostResolvConfs are where the host's nameservers are looked for, in
// order: the host's own resolv.conf, then systemd-resolved's list of its
// upstream servers (for a host whose resolv.conf names only its local stub
// 127.0.0.53, which sandboxes cannot reach).
var hostResolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// hostNameservers returns the IPv4 nameservers (at most 3) of the first of
// hostResolvConfs that names any a sandbox can reach (not loopback), with
// its search domains.
func hostNameservers() ([]netip.Addr, string) {
	for _, p := range hostResolvConfs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if ns, search := parseResolvConf(string(b)); len(ns) > 0 {
			return ns, search
		}
	}
	return nil, ""
}

// parseResolvConf returns the usable nameservers and the search domains of
// a resolv.conf.
func parseResolvConf(s string) ([]netip.Addr, string) {
	var ns []netip.Addr
	var search string
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err == nil && a.Is4() && !a.IsLoopback() && !a.IsUnspecified() && len(ns) < 3 {
				ns = append(ns, a)
			}
		case "search", "domain":
			search = strings.Join(f[1:], " ")
		}
	}
	return ns, search
}

// checkNetwork validates a Spec's network mode and returns the sandbox's
// /etc/resolv.conf for it. A sandbox without a network gets a resolver that
// fails at once (the image's copy of the host's would make lookups stall
// for seconds).
func (r *Runtime) checkNetwork(s runtime.Spec) (string, error) {
	switch s.Network {
	case "", runtime.NetworkNone:
		return "# written by sandboxd: network mode none, no resolver\n" +
			"nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", nil
	case runtime.NetworkBridge:
	default:
		return "", fmt.Errorf("%w: network mode %q: want %q or %q", errdefs.ErrInvalidArgument, s.Network, runtime.NetworkNone, runtime.NetworkBridge)
	}
	if _, err := r.bridge.addr(s.UIDBase); err != nil {
		return "", err
	}
	ns, search := r.bridge.nameservers, ""
	if len(ns) == 0 {
		ns, search = hostNameservers()
	}
	if len(ns) == 0 {
		return "", fmt.Errorf("%w: no nameserver for bridge sandboxes: the host's resolv.conf names none reachable from a sandbox (only loopback ones); set the daemon's --bridge-dns", errdefs.ErrUnavailable)
	}
	var sb strings.Builder
	sb.WriteString("# written by sandboxd at start: network mode bridge\n")
	for _, a := range ns {
		sb.WriteString("nameserver " + a.String() + "\n")
	}
	if search != "" {
		sb.WriteString("search " + search + "\n")
	}
	sb.WriteString("options timeout:2 attempts:2\n")
	return sb.String(), nil
}

// setupNetwork prepares a bridge sandbox's network namespace (and the
// bridge, on first use) and returns its path; for mode none it returns ""
// and runc makes a namespace with loopback only.
func (r *Runtime) setupNetwork(s runtime.Spec) (string, error) {
	if s.Network != runtime.NetworkBridge {
		return "", nil
	}
	addr, err := r.bridge.addr(s.UIDBase)
	if err != nil {
		return "", err
	}
	index, mtu, err := r.bridge.ensure()
	if err != nil {
		return "", fmt.Errorf("bridge network: %w", err)
	}
	nsPath := r.netnsFile(s.ID)
	if err := r.bridge.setupNetns(nsPath, vethName(r.dir, s.ID), index, mtu, addr); err != nil {
		return "", fmt.Errorf("sandbox %s network: %w", s.ID, err)
	}
	return nsPath, nil
}

// reattachNetwork is called for a running container found after a daemon
// restart: if it is a bridge sandbox, the bridge and its firewall are
// checked (and rules re-applied with this daemon's configuration).
func (r *Runtime) reattachNetwork(id string) {
	if _, err := os.Stat(r.netnsFile(id)); err != nil {
		return
	}
	if _, _, err := r.bridge.ensure(); err != nil {
		r.log.Error("re-attached bridge sandbox: bridge network", "sandbox", id, "err", err)
	}
}

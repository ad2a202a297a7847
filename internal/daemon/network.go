package daemon

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sandboxd/sandboxd/internal/runtime/runc"
)

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

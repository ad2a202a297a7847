package runc

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bridgeState is the runtime's view of its bridge: set up (with its
// firewall) once per Runtime, looked up on every bridge sandbox's start.
type bridgeState struct {
	net *bridgeNet
	log *slog.Logger

	mu    sync.Mutex
	ready bool // the bridge, its address, nftables table and ip_forward are in place; guarded by mu
}

// ensure returns the bridge's index and MTU, creating and configuring the
// bridge, the nftables table and ip_forward first if this Runtime has not
// yet (or the bridge or the table has gone since: a host firewall reload
// that flushed the ruleset must not leave new sandboxes unisolated).
func (s *bridgeState) ensure() (index, mtu int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := netlink.LinkByName(s.net.name)
	if err == nil && s.ready {
		if firewallInstalled(s.net.name) {
			return l.Attrs().Index, l.Attrs().MTU, nil
		}
		s.log.Warn("bridge network: its nftables table is gone (ruleset flushed?); installing it again", "table", "inet "+s.net.name)
	}
	s.ready = false
	if err != nil {
		if !isLinkNotFound(err) {
			return 0, 0, fmt.Errorf("bridge %s: %w", s.net.name, err)
		}
		if l, err = s.create(); err != nil {
			return 0, 0, err
		}
	}
	if l.Type() != "bridge" {
		return 0, 0, fmt.Errorf("bridge %s: an interface of that name exists and is a %s, not a bridge", s.net.name, l.Type())
	}
	if err := s.configure(l); err != nil {
		return 0, 0, err
	}
	if err := installFirewall(s.net); err != nil {
		return 0, 0, err
	}
	if err := enableForwarding(s.log); err != nil {
		return 0, 0, err
	}
	s.ready = true
	s.log.Info("bridge network ready", "bridge", s.net.name, "cidr", s.net.prefix, "gateway", s.net.gateway, "host_ports", fmt.Sprint(s.net.hostPorts))
	return l.Attrs().Index, l.Attrs().MTU, nil
}

func (s *bridgeState) create() (netlink.Link, error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.net.name}}
	if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create bridge %s: %w", s.net.name, err)
	}
	return netlink.LinkByName(s.net.name)
}

// configure gives the bridge the gateway address (and no other IPv4 one,
// nor IPv6: sandboxes have IPv4 only) and brings it up.
func (s *bridgeState) configure(l netlink.Link) error {
	name := s.net.name
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0)
	want := &net.IPNet{IP: s.net.gateway.AsSlice(), Mask: net.CIDRMask(s.net.prefix.Bits(), 32)}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s addresses: %w", name, err)
	}
	for _, a := range addrs {
		if !a.IP.Equal(want.IP) || !bytes.Equal(a.Mask, want.Mask) {
			if err := netlink.AddrDel(l, &a); err != nil {
				return fmt.Errorf("bridge %s: remove old address %s: %w", name, a.IPNet, err)
			}
		}
	}
	if err := netlink.AddrReplace(l, &netlink.Addr{IPNet: want}); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", name, want, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bridge %s: up: %w", name, err)
	}
	return nil
}

// enableForwarding turns IPv4 forwarding on in the host, which NAT needs:
// a host-wide setting (net.ipv4.ip_forward), turned on when the first
// bridge sandbox starts and never turned off by sandboxd.
func enableForwarding(log *slog.Logger) error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("enable net.ipv4.ip_forward: %w", err)
	}
	log.Info("enabled net.ipv4.ip_forward for bridge sandboxes' NAT")
	return nil
}

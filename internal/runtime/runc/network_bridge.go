package runc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensure returns the bridge's index and MTU, creating and configuring the
// bridge, the nftables table and ip_forward first if this Runtime has not
// yet (or the bridge or the table has gone since: a host firewall reload
// that flushed the ruleset must not leave new sandboxes unisolated).
func (b *bridgeNet) ensure() (index, mtu int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, err := netlink.LinkByName(b.name)
	if err == nil && b.ready {
		if firewallInstalled(b.name) {
			return l.Attrs().Index, l.Attrs().MTU, nil
		}
		b.log.Warn("bridge network: its nftables table is gone (ruleset flushed?); installing it again", "table", "inet "+b.name)
	}
	b.ready = false
	if err != nil {
		if !isLinkNotFound(err) {
			return 0, 0, fmt.Errorf("bridge %s: %w", b.name, err)
		}
		err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.name}})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return 0, 0, fmt.Errorf("create bridge %s: %w", b.name, err)
		}
		if l, err = netlink.LinkByName(b.name); err != nil {
			return 0, 0, fmt.Errorf("bridge %s: %w", b.name, err)
		}
	}
	if l.Type() != "bridge" {
		return 0, 0, fmt.Errorf("bridge %s: an interface of that name exists and is a %s, not a bridge", b.name, l.Type())
	}
	if err := b.configure(l); err != nil {
		return 0, 0, err
	}
	if err := installFirewall(b); err != nil {
		return 0, 0, err
	}
	if err := b.enableForwarding(); err != nil {
		return 0, 0, err
	}
	b.ready = true
	b.log.Info("bridge network ready", "bridge", b.name, "cidr", b.prefix, "gateway", b.gateway, "host_ports", fmt.Sprint(b.hostPorts))
	return l.Attrs().Index, l.Attrs().MTU, nil
}

// configure gives the bridge the gateway address (and no other IPv4 one,
// nor IPv6: sandboxes have IPv4 only) and brings it up.
func (b *bridgeNet) configure(l netlink.Link) error {
	name := b.name
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0)
	want := &net.IPNet{IP: b.gateway.AsSlice(), Mask: net.CIDRMask(b.prefix.Bits(), 32)}
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
func (b *bridgeNet) enableForwarding() error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	if b, err := os.ReadFile(p); err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("enable net.ipv4.ip_forward: %w", err)
	}
	b.log.Info("enabled net.ipv4.ip_forward for bridge sandboxes' NAT")
	return nil
}

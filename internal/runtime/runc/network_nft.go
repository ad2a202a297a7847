package runc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// installFirewall replaces the nftables table "inet <bridge>" with the
// bridge network's rules, in one atomic batch. With B the bridge and C its
// prefix:
//
//	chain postrouting { type nat hook postrouting priority srcnat
//	  meta nfproto ipv4 ip saddr C oifname != B masquerade }
//	chain forward { type filter hook forward priority filter
//	  iifname B oifname B drop                  # sandbox to sandbox
//	  iifname B meta nfproto != ipv4 drop
//	  iifname B ip saddr != C drop              # spoofed sources
//	  iifname B ip daddr 169.254.0.0/16 drop    # link-local: cloud metadata
//	  oifname B ct state established,related accept
//	  oifname B drop }                          # nothing unasked comes in
//	chain input { type filter hook input priority filter
//	  iifname B ct state established,related accept
//	  iifname B meta l4proto P th dport N accept   # each allowed host port
//	  iifname B drop }                          # the host's own services
//
// Base chains' policies stay accept: traffic that is not the bridge's is
// left to the host's other rules.
func installFirewall(b *bridgeNet) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: b.name}
	// Adding first makes the delete succeed whether or not it existed.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	br := b.name
	rule := func(ch *nftables.Chain, e ...[]expr.Any) {
		var all []expr.Any
		for _, x := range e {
			all = append(all, x...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	linkLocal := netip.MustParsePrefix("169.254.0.0/16")

	rule(post, isIPv4(true), ipAddr(12, b.prefix, true), ifname(expr.MetaKeyOIFNAME, br, false), []expr.Any{&expr.Masq{}})

	rule(fwd, ifname(expr.MetaKeyIIFNAME, br, true), ifname(expr.MetaKeyOIFNAME, br, true), verdict(expr.VerdictDrop))
	rule(fwd, ifname(expr.MetaKeyIIFNAME, br, true), isIPv4(false), verdict(expr.VerdictDrop))
	rule(fwd, ifname(expr.MetaKeyIIFNAME, br, true), ipAddr(12, b.prefix, false), verdict(expr.VerdictDrop))
	rule(fwd, ifname(expr.MetaKeyIIFNAME, br, true), isIPv4(true), ipAddr(16, linkLocal, true), verdict(expr.VerdictDrop))
	rule(fwd, ifname(expr.MetaKeyOIFNAME, br, true), ctEstablished(), verdict(expr.VerdictAccept))
	rule(fwd, ifname(expr.MetaKeyOIFNAME, br, true), verdict(expr.VerdictDrop))

	rule(in, ifname(expr.MetaKeyIIFNAME, br, true), ctEstablished(), verdict(expr.VerdictAccept))
	for _, p := range b.hostPorts {
		proto := byte(unix.IPPROTO_TCP)
		if p.Proto == "udp" {
			proto = unix.IPPROTO_UDP
		}
		rule(in, ifname(expr.MetaKeyIIFNAME, br, true), dport(proto, p.Port), verdict(expr.VerdictAccept))
	}
	rule(in, ifname(expr.MetaKeyIIFNAME, br, true), verdict(expr.VerdictDrop))

	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables table inet %s: %w", b.name, err)
	}
	return nil
}

// firewallInstalled tells whether the nftables table of the bridge named
// name exists.
func firewallInstalled(name string) bool {
	c, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = c.ListTableOfFamily(name, nftables.TableFamilyINet)
	return err == nil
}

// RemoveBridge deletes the bridge named name and its nftables table, for
// operators and tests; sandboxd itself never removes them (running
// sandboxes outlive the daemon). Whatever is missing already is no error.
func RemoveBridge(name string) error {
	c, err := nftables.New()
	if err == nil {
		t := &nftables.Table{Family: nftables.TableFamilyINet, Name: name}
		c.AddTable(t) // so that deleting it succeeds if it is gone
		c.DelTable(t)
		if err = c.Flush(); err != nil {
			err = fmt.Errorf("nftables table inet %s: %w", name, err)
		}
	}
	return errors.Join(err, deleteLink(name))
}

// ifname matches the input or output interface's name (key) to name, or
// to anything else.
func ifname(key expr.MetaKey, name string, equal bool) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: cmpOp(equal), Register: 1, Data: b}}
}

// isIPv4 matches IPv4 packets, or the rest.
func isIPv4(equal bool) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: cmpOp(equal), Register: 1, Data: []byte{unix.NFPROTO_IPV4}}}
}

// ipAddr matches the IPv4 address at offset (12: source, 16: destination)
// of the network header to prefix p, or to anything outside it. The
// packet must be known to be IPv4.
func ipAddr(offset uint32, p netip.Prefix, in bool) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: cmpOp(in), Register: 1, Data: a[:]},
	}
}

// ctEstablished matches packets of connections seen both ways, and
// related ones (ICMP errors).
func ctEstablished() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// dport matches transport protocol proto with destination port port.
func dport(proto byte, port uint16) []expr.Any {
	p := make([]byte, 2)
	binary.BigEndian.PutUint16(p, port)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p},
	}
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func cmpOp(equal bool) expr.CmpOp {
	if equal {
		return expr.CmpOpEq
	}
	return expr.CmpOpNeq
}

package testutil

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// FreeCIDR returns a random 10.N.0.0/16 (N in 200-249) in which no
// interface of the host has an address, for a test's own bridge: tests
// running at the same time (other packages' too) make bridges, and two
// bridges with one range would send one's answers to the other's
// sandboxes.
func FreeCIDR(t testing.TB) string {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		n, _ := rand.Int(rand.Reader, big.NewInt(50))
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 200+n.Int64()))
		free := true
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && p.Contains(ip) {
				free = false
				break
			}
		}
		if free {
			return p.String()
		}
	}
	t.Fatal("no free range in 10.200.0.0-10.249.255.255")
	return ""
}

package runc

import (
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

func TestBridgeAddr(t *testing.T) {
	b, err := newBridgeNet(BridgeConfig{CIDR: "10.89.7.9/16"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.gateway.String() != "10.89.0.1" || b.prefix.String() != "10.89.0.0/16" {
		t.Fatalf("gateway %s prefix %s", b.gateway, b.prefix)
	}
	seen := map[netip.Addr]bool{}
	// The manager's uid ranges: 1<<28 + slot*IDMapSize, slots 1 and up.
	for slot := uint32(1); slot < 60000; slot += 7 {
		a, err := b.addr(1<<28 + slot*runtime.IDMapSize)
		if err != nil {
			t.Fatalf("slot %d: %v", slot, err)
		}
		if !b.prefix.Contains(a) || a == b.gateway || seen[a] {
			t.Fatalf("slot %d: address %s (gateway %s, seen %v)", slot, a, b.gateway, seen[a])
		}
		seen[a] = true
	}
	if a, _ := b.addr(1<<28 + 1*runtime.IDMapSize); a.String() != "10.89.16.1" {
		t.Errorf("slot 1: %s", a)
	}
	if _, err := b.addr(runtime.IDMapSize); err == nil {
		t.Errorf("uid base %d got the gateway's address", runtime.IDMapSize)
	}
	for _, cidr := range []string{"10.89.0.0/24", "fd00::/64", "nonsense"} {
		if _, err := newBridgeNet(BridgeConfig{CIDR: cidr}, nil); err == nil {
			t.Errorf("CIDR %s accepted", cidr)
		}
	}
	if _, err := newBridgeNet(BridgeConfig{Name: "much-too-long-name"}, nil); err == nil {
		t.Errorf("long bridge name accepted")
	}
}

func TestParseResolvConf(t *testing.T) {
	for _, tc := range []struct{ in, ns, search string }{
		{"nameserver 10.255.255.53\n", "[10.255.255.53]", ""},
		{"nameserver 127.0.0.53\noptions edns0\nsearch corp.example\n", "[]", "corp.example"},
		{"# c\nnameserver ::1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\ndomain a.example\n",
			"[192.0.2.1 192.0.2.2 192.0.2.3]", "a.example"},
	} {
		ns, search := parseResolvConf(tc.in)
		if fmt.Sprint(ns) != tc.ns || search != tc.search {
			t.Errorf("parseResolvConf(%q) = %v %q, want %s %q", tc.in, ns, search, tc.ns, tc.search)
		}
	}
}

// BenchmarkSetupNetns measures what network mode bridge adds to a start:
// the namespace (with its sysfs), the veth on the bridge, addresses,
// routes; and its teardown, reported apart.
func BenchmarkSetupNetns(b *testing.B) {
	testutil.RequiresRoot(b)
	br, err := newBridgeNet(BridgeConfig{Name: "sdbench0", CIDR: "10.250.0.0/16"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = RemoveBridge("sdbench0") })
	index, mtu, err := br.ensure()
	if err != nil {
		b.Fatal(err)
	}
	dir := testutil.TempDir(b)
	ns := filepath.Join(dir, "netns")
	addr, _ := br.addr(1 << 28)
	var setup, teardown []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := br.setupNetns(ns, "sdbench1", index, mtu, addr); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := teardownNetns(ns, "sdbench1"); err != nil {
			b.Fatal(err)
		}
		setup, teardown = append(setup, t1.Sub(t0)), append(teardown, time.Since(t1))
	}
	slices.Sort(setup)
	slices.Sort(teardown)
	b.ReportMetric(float64(setup[len(setup)/2].Microseconds())/1000, "setup-p50-ms")
	b.ReportMetric(float64(setup[len(setup)*99/100].Microseconds())/1000, "setup-p99-ms")
	b.ReportMetric(float64(teardown[len(teardown)/2].Microseconds())/1000, "teardown-p50-ms")
}

package runc_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/runtime/runtimetest"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

func TestParseHostPorts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		bad  bool
	}{
		{in: "", want: "[]"},
		{in: "5432", want: "[5432/tcp]"},
		{in: " 8080/tcp, 53/udp ,", want: "[8080/tcp 53/udp]"},
		{in: "0", bad: true},
		{in: "65536", bad: true},
		{in: "80/sctp", bad: true},
		{in: "x", bad: true},
	} {
		got, err := runc.ParseHostPorts(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseHostPorts(%q) error %v", tc.in, err)
			continue
		}
		if !tc.bad && fmt.Sprint(got) != tc.want && !(len(got) == 0 && tc.want == "[]") {
			t.Errorf("ParseHostPorts(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}

// testBridge returns a bridge configuration of the test's own (a random
// name and /16), removed with its nftables table when the test ends.
func testBridge(t testing.TB) runc.BridgeConfig {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	cfg := runc.BridgeConfig{Name: "sdt" + hex.EncodeToString(b), CIDR: testutil.FreeCIDR(t)}
	t.Cleanup(func() {
		if err := runc.RemoveBridge(cfg.Name); err != nil {
			t.Errorf("remove bridge: %v", err)
		}
	})
	return cfg
}

// bridgeRuntime is a runtime with a bridge of its own (testBridge, also
// returned) whose sandboxes are given the resolver 192.0.2.53.
func bridgeRuntime(t testing.TB) (*runc.Runtime, runc.BridgeConfig) {
	br := testBridge(t)
	br.Nameservers = []netip.Addr{netip.MustParseAddr("192.0.2.53")}
	rt, err := runc.New(runc.Config{Dir: testutil.TempDir(t), Agent: testutil.AgentBinary(t), Bridge: br})
	if err != nil {
		t.Fatal(err)
	}
	return rt, br
}

// TestBridgeSuite runs the shared runtime suite with bridge sandboxes: the
// same lifecycle, attach and destroy-leaves-nothing checks (Leftovers
// includes the veth).
func TestBridgeSuite(t *testing.T) {
	testutil.RequiresRoot(t)
	agentBin := testutil.AgentBinary(t)
	dir := testutil.TempDir(t)
	br := testBridge(t)
	env := runtimetest.Env{
		Dir:       dir,
		Image:     testutil.BusyboxImage(t),
		Leftovers: func(id string) []string { return runc.Leftovers(dir, id) },
		Network:   runtime.NetworkBridge,
	}
	runtimetest.Run(t, env, func(t *testing.T, dir string) runtime.Runtime {
		rt, err := runc.New(runc.Config{Dir: dir, Agent: agentBin, Bridge: br})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	})
}

func run(t testing.TB, inst *runtime.Instance, cmd string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := agentclient.New(inst.Socket)
	defer c.Close()
	res, err := c.Exec(ctx, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: cmd}})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res.Stdout + res.Stderr, res.ExitCode
}

// TestBridgeSandboxNetwork checks what a bridge sandbox sees of its
// network, that its root cannot change it but can serve on port 80, and
// that its veth is an isolated port of the bridge only while it runs.
func TestBridgeSandboxNetwork(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	rt, br := bridgeRuntime(t)
	const id = "net-bridge"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	spec := runtime.Spec{ID: id, Image: testutil.BusyboxImage(t), UIDBase: 1_000_000_000 + 7*runtime.IDMapSize, Network: runtime.NetworkBridge}
	inst, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	prefix := netip.MustParsePrefix(br.CIDR)
	addr := prefix.Addr()
	for range spec.UIDBase / runtime.IDMapSize {
		addr = addr.Next()
	}
	gw := prefix.Addr().Next()
	for cmd, want := range map[string]string{
		"ip -4 addr show eth0": "inet " + addr.String() + "/16",
		"ip route":             "default via " + gw.String() + " dev eth0",
		"cat /etc/resolv.conf": "nameserver 192.0.2.53\n",
		"ls /sys/class/net":    "eth0\nlo\n",
		"cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6": "1\n",
	} {
		if out, code := run(t, inst, cmd); code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, %q; want it to contain %q", cmd, code, out, want)
		}
	}
	for _, cmd := range []string{
		"ip addr add " + addr.Next().String() + "/16 dev eth0",
		"ip link set eth0 down",
		"ip route del default",
	} {
		if out, code := run(t, inst, cmd); code == 0 {
			t.Errorf("%s: succeeded inside the sandbox: %s", cmd, out)
		}
	}
	// Listening, not merely still running (a loaded machine may not have
	// got httpd to its bind yet after a fixed sleep).
	if out, code := run(t, inst, `httpd -f -p 80 & p=$!; i=0; while ! netstat -ltn | grep -q ':80 '; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done; kill $p`); code != 0 {
		t.Errorf("serving on port 80: exit %d: %s", code, out)
	}

	ports := bridgePorts(t, br.Name)
	if len(ports) != 1 || !ports[0].isolated {
		t.Errorf("bridge ports while running: %+v, want one isolated", ports)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if ports := bridgePorts(t, br.Name); len(ports) != 0 {
		t.Errorf("bridge ports after stop: %+v", ports)
	}
}

type port struct {
	name     string
	isolated bool
}

// bridgePorts lists the interfaces attached to bridge name.
func bridgePorts(t testing.TB, name string) []port {
	t.Helper()
	br, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []port
	for _, l := range links {
		if l.Attrs().MasterIndex != br.Attrs().Index {
			continue
		}
		p := port{name: l.Attrs().Name}
		if pi, err := netlink.LinkGetProtinfo(l); err == nil {
			p.isolated = pi.Isolated
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkStartNetwork measures Start (container up, agent answering) in
// network mode none and bridge, alternating so that both see the same load
// on a shared machine; the difference is what a bridge sandbox's
// namespace, sysfs, veth, addresses and routes cost. Stops are not timed.
func BenchmarkStartNetwork(b *testing.B) {
	testutil.RequiresRoot(b)
	ctx := context.Background()
	image := testutil.BusyboxImage(b)
	rt, _ := bridgeRuntime(b)
	modes := []string{runtime.NetworkNone, runtime.NetworkBridge}
	lat := map[string][]time.Duration{}
	for i, mode := range modes {
		id := "bench-net-" + mode
		b.Cleanup(func() { _ = rt.Destroy(ctx, id) })
		// A first start outside the measurement creates the files.
		spec := runtime.Spec{ID: id, Image: image, UIDBase: 1_000_000_000 + uint32(9+i)*runtime.IDMapSize, Network: mode}
		if _, err := rt.Start(ctx, spec); err != nil {
			b.Fatal(err)
		}
		if err := rt.Stop(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		for i, mode := range modes {
			id := "bench-net-" + mode
			spec := runtime.Spec{ID: id, Image: image, UIDBase: 1_000_000_000 + uint32(9+i)*runtime.IDMapSize, Network: mode}
			t0 := time.Now()
			if _, err := rt.Start(ctx, spec); err != nil {
				b.Fatal(err)
			}
			lat[mode] = append(lat[mode], time.Since(t0))
			b.StopTimer()
			if err := rt.Stop(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	for _, mode := range modes {
		l := lat[mode]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, mode+"-p50-ms")
		b.ReportMetric(float64(l[(len(l)*99)/100].Microseconds())/1000, mode+"-p99-ms")
	}
}

// TestBridgeFirewallReinstalled: a host firewall reload that flushed the
// ruleset took the bridge's table along; the next bridge sandbox's start
// puts it back rather than starting without isolation.
func TestBridgeFirewallReinstalled(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	rt, br := bridgeRuntime(t)
	table := func() bool {
		t.Helper()
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListTableOfFamily(br.Name, nftables.TableFamilyINet)
		return err == nil
	}
	image := testutil.BusyboxImage(t)
	for i, id := range []string{"fw-a", "fw-b"} {
		t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
		spec := runtime.Spec{ID: id, Image: image, UIDBase: 1_000_000_000 + uint32(20+i)*runtime.IDMapSize, Network: runtime.NetworkBridge}
		if _, err := rt.Start(ctx, spec); err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		if !table() {
			t.Fatalf("after starting %s: no table inet %s", id, br.Name)
		}
		// As "nft flush ruleset" would.
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: br.Name})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

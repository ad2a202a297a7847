package runc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netnsFile is where a bridge sandbox's network namespace is bind-mounted.
func (r *Runtime) netnsFile(id string) string { return filepath.Join(r.sandboxDir(id), "netns") }

// sysfsDir is where a bridge sandbox's sysfs is mounted on the host, to be
// bind-mounted at the container's /sys. The container cannot mount sysfs
// itself: that takes CAP_SYS_ADMIN over its network namespace, which
// belongs to the host's user namespace. Mounted from inside that network
// namespace, this sysfs shows the sandbox's interfaces, not the host's,
// and otherwise the same as the sysfs of a sandbox in mode none.
func sysfsDir(nsPath string) string { return nsPath + ".sys" }

// nsSysctls are set in every bridge sandbox's network namespace. The
// namespace belongs to the host's user namespace, so the sandbox's root has
// no capability over it: ports below 1024 and ICMP echo sockets must be
// open to everyone for `python3 -m http.server 80` and ping to work, as
// they do for root in a container with its own network. IPv6 is off on
// the interfaces created after the namespace: sandboxes get IPv4 only
// (loopback keeps ::1).
var nsSysctls = []struct{ path, value string }{
	{"net/ipv4/ip_unprivileged_port_start", "0"},
	{"net/ipv4/ping_group_range", "0 2147483647"},
	{"net/ipv6/conf/default/disable_ipv6", "1"},
}

// setupNetns creates a sandbox's network namespace, bind-mounted at nsPath
// (and a sysfs of it at sysfsDir(nsPath)), with lo up and eth0 at addr,
// whose default route goes through the bridge's gateway; eth0's peer, host,
// is an isolated port of the bridge (index bridge, MTU mtu). On error it
// may leave the mount and the veth behind: teardownNetns removes them.
func (b *bridgeNet) setupNetns(nsPath, host string, bridge, mtu int, addr netip.Addr) error {
	f, err := os.OpenFile(nsPath, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("netns file: %w", err)
	}
	f.Close()
	// The namespace is made by a thread that unshares its own.
	return onNewThread(func() error { return b.setupNetnsOnThread(nsPath, host, bridge, mtu, addr) })
}

func (b *bridgeNet) setupNetnsOnThread(nsPath, host string, bridge, mtu int, addr netip.Addr) error {
	hostH, err := netlink.NewHandle(unix.NETLINK_ROUTE) // in the host's namespace
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer hostH.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("new network namespace: %w", err)
	}
	// From here on, this thread is in the sandbox's namespace: /proc/sys/net
	// shows its settings, and new sockets belong to it.
	for _, s := range nsSysctls {
		if err := os.WriteFile("/proc/sys/"+s.path, []byte(s.value), 0); err != nil {
			return fmt.Errorf("sandbox sysctl %s: %w", s.path, err)
		}
	}
	nsH, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nsH.Close()
	const self = "/proc/thread-self/ns/net"
	if err := unix.Mount(self, nsPath, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount network namespace: %w", err)
	}
	sys := sysfsDir(nsPath)
	if err := os.Mkdir(sys, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sysfs: %w", err)
	}
	if err := unix.Mount("sysfs", sys, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount sysfs: %w", err)
	}
	nsFd, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer unix.Close(nsFd)

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: host, MasterIndex: bridge, MTU: mtu},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(nsFd),
	}
	if err := hostH.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s: %w", host, err)
	}
	// Isolated ports of a bridge forward only to non-isolated ones (the
	// bridge itself): sandboxes do not even see each other's ARP.
	if err := hostH.LinkSetIsolated(veth, true); err != nil {
		return fmt.Errorf("veth %s: isolate: %w", host, err)
	}
	if err := hostH.LinkSetUp(veth); err != nil {
		return fmt.Errorf("veth %s: up: %w", host, err)
	}

	lo, err := nsH.LinkByName("lo")
	if err == nil {
		err = nsH.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("sandbox lo: %w", err)
	}
	eth, err := nsH.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("sandbox eth0: %w", err)
	}
	ipnet := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(b.prefix.Bits(), 32)}
	if err := nsH.AddrAdd(eth, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("sandbox eth0 address %s: %w", ipnet, err)
	}
	if err := nsH.LinkSetUp(eth); err != nil {
		return fmt.Errorf("sandbox eth0 up: %w", err)
	}
	if err := nsH.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: b.gateway.AsSlice()}); err != nil {
		return fmt.Errorf("sandbox default route: %w", err)
	}
	return nil
}

// teardownNetns removes a sandbox's network namespace mount and file, its
// sysfs, and its veth (the peer inside goes with it). Missing pieces are
// no error.
func teardownNetns(nsPath, host string) error {
	sys := sysfsDir(nsPath)
	return errors.Join(unmount(sys), removeFile(sys), unmount(nsPath), removeFile(nsPath), deleteLink(host))
}

// removeFile removes the file or empty directory path, if it exists.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// deleteLink deletes the host's interface name, if there is one.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkDel(l)
	}
	// ENODEV: gone meanwhile (a dead sandbox's namespace takes its veth
	// along, asynchronously).
	if err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

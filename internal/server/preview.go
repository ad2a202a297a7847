package server

import "net/netip"

// PreviewConfig configures preview URLs:
// http(s)://{port}-{sandboxId}-{token}.{Domain}[:listenPort]/... (served
// by package preview, in front of the API).
type PreviewConfig struct {
	// Domain and TrustedProxies: see preview.Config.
	Domain         string
	TrustedProxies []netip.Prefix
	// ReservedPorts may not be exposed: the ports the system itself uses
	// (the daemon's own listen port).
	ReservedPorts []int
}

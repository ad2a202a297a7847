package server

import "net/netip"

// PreviewConfig configures preview URLs:
// http(s)://{port}-{sandboxId}-{token}.{Domain}[:listenPort]/... (served
// by package preview, in front of the API).
type PreviewConfig struct {
	// Domain is the preview domain (default "localhost", whose
	// subdomains browsers and curl resolve to loopback). A request whose
	// Host is a subdomain of it is preview traffic, never an API call.
	Domain string
	// TrustedProxies are the peers (such as a TLS-terminating proxy in
	// front of the daemon) whose X-Forwarded-For, -Host and -Proto
	// headers are believed and passed on; from any other peer they are
	// replaced.
	TrustedProxies []netip.Prefix
	// ReservedPorts may not be exposed: the ports the system itself uses
	// (the daemon's own listen port).
	ReservedPorts []int
}

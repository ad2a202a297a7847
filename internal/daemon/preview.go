package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/internal/server"
)

// previewConfig turns the preview flags into the API's configuration:
// the domain, the trusted proxies (each an address or a CIDR), and the
// ports that may not be exposed (the daemon's own listen port).
func (c *Config) previewConfig() (server.PreviewConfig, error) {
	pc := server.PreviewConfig{Domain: c.PreviewDomain}
	for _, s := range c.TrustedProxies {
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			p, err := netip.ParsePrefix(f)
			if err != nil {
				a, aerr := netip.ParseAddr(f)
				if aerr != nil {
					return pc, fmt.Errorf("trusted proxy %q: want an address or a CIDR", f)
				}
				p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
			}
			pc.TrustedProxies = append(pc.TrustedProxies, p.Masked())
		}
	}
	if _, port, err := net.SplitHostPort(c.Listen); err == nil {
		if n, err := strconv.Atoi(port); err == nil && n > 0 {
			pc.ReservedPorts = append(pc.ReservedPorts, n)
		}
	}
	return pc, nil
}

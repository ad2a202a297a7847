package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// ExposePortOptions adjust one [Sandbox.ExposePort] call. The zero value
// exposes the port unnamed with a random token.
type ExposePortOptions struct {
	// Name labels the port in listings.
	Name string
	// Token is the preview URL's token, 1-16 characters of [a-z0-9_];
	// empty lets the daemon choose a random one (about 83 bits).
	Token string
}

// ExposePort exposes port (1024-65535) of the sandbox at a preview URL,
// http(s)://{port}-{sandboxId}-{token}.{previewDomain}[:listenPort]/,
// which anyone holding the URL may use: requests to it are proxied to the
// service listening on that port inside the sandbox. It creates the
// sandbox if needed.
//
// Exposing an exposed port again keeps its token and refreshes the URL
// after a restart of the sandbox's container (which makes old URLs answer
// ErrStalePreviewURL). It returns ErrInvalidPort for a port outside the
// range or reserved by the system, ErrValidation for a malformed token,
// and ErrPortAlreadyExposed if opts ask for a token other than the one the
// port has.
func (s *Sandbox) ExposePort(ctx context.Context, port int, opts *ExposePortOptions) (*api.ExposedPort, error) {
	req := api.ExposePortRequest{Port: port}
	if opts != nil {
		req.Name, req.Token = opts.Name, opts.Token
	}
	return call[api.ExposedPort](ctx, &s.target, fmt.Sprintf("expose port %d of sandbox %s", port, s.sandboxID), once, http.MethodPost, "/ports", nil, req)
}

// UnexposePort removes port's preview URL: it answers 404 from then on.
// Unexposing a port that is not exposed succeeds.
func (s *Sandbox) UnexposePort(ctx context.Context, port int) error {
	_, err := call[none](ctx, &s.target, fmt.Sprintf("unexpose port %d of sandbox %s", port, s.sandboxID), once, http.MethodDelete, "/ports/"+strconv.Itoa(port), nil, nil)
	return err
}

// GetExposedPorts returns the sandbox's exposed ports with their preview
// URLs, by port number.
func (s *Sandbox) GetExposedPorts(ctx context.Context) ([]api.ExposedPort, error) {
	list, err := call[api.ExposedPortList](ctx, &s.target, "exposed ports of sandbox "+s.sandboxID, retried, http.MethodGet, "/ports", nil, nil)
	if err != nil {
		return nil, err
	}
	return list.Ports, nil
}

// PreviewHTTPClient returns an http.Client for preview URLs
// ([api.ExposedPort.ExposedAt]). Preview URLs name hosts under the
// localhost domain (8080-demo-TOKEN.localhost:8787), which browsers and
// curl send to loopback but Go's resolver does not resolve: this client
// sends requests for "localhost" and its subdomains to the daemon's host
// (the one in the client's URL), at the URL's port, with the Host header
// as the URL has it, never through a proxy; other hosts are reached as
// usual. It is built on Options.HTTPClient's transport if that is an
// *http.Transport, on http.DefaultTransport's settings otherwise.
func (c *Client) PreviewHTTPClient() *http.Client {
	daemon := c.baseURL
	if u, err := url.Parse(c.baseURL); err == nil {
		daemon = u.Hostname()
	}
	var d net.Dialer
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if own, ok := c.http.Transport.(*http.Transport); ok {
		tr = own.Clone() // the client's TLS and timeouts
	}
	tr.Proxy = func(r *http.Request) (*url.URL, error) {
		if isLocalhost(r.URL.Hostname()) {
			return nil, nil // the daemon's: never through a proxy
		}
		return http.ProxyFromEnvironment(r)
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && isLocalhost(host) {
			addr = net.JoinHostPort(daemon, port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}
}

// isLocalhost tells whether host is "localhost" or a name under it.
func isLocalhost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

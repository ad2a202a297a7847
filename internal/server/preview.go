package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
)

// PreviewConfig configures preview URLs:
// http(s)://{port}-{sandboxId}-{token}.{Domain}[:listenPort]/...
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

func (s *server) previewDomain() string {
	d := strings.ToLower(strings.Trim(s.cfg.Preview.Domain, "."))
	if d == "" {
		d = "localhost"
	}
	return d
}

// previews sends requests for a preview host to the preview proxy and
// everything else to next (the API). It runs before routing and
// authentication: preview URLs carry their own token, and no API call is
// ever served on a preview host.
func (s *server) previews(next http.Handler, rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		label, ok := s.previewLabel(r.Host)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		s.preview(w, r, label, rp, "")
	})
}

// previewLabel returns the label of a preview host
// ("{port}-{sandboxId}-{token}" of host, any port and case aside), and
// false for a host that is not one.
func (s *server) previewLabel(host string) (string, bool) {
	h := strings.TrimSuffix(strings.ToLower(hostOnly(host)), ".")
	label, ok := strings.CutSuffix(h, s.previewSuffix)
	return label, ok && label != ""
}

// previewTarget is where one preview request goes, carried in its
// context from preview to the proxy's hooks.
type previewTarget struct {
	id    string
	port  int
	addr  string // 127.0.0.1:port, as the agent's tunnel transport wants it
	agent *agentclient.Client
}

type previewKey struct{}

func targetOf(r *http.Request) *previewTarget {
	t, _ := r.Context().Value(previewKey{}).(*previewTarget)
	return t
}

// previewProxy is the one reverse proxy of all preview traffic: each
// request carries its target in its context (previewTarget), and the
// transport is the target sandbox's pool of agent tunnels.
func (s *server) previewProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: tunnelTransport{},
		// Event streams (text/event-stream) and bodies of unknown length
		// are flushed as they come (ReverseProxy flushes those at once
		// whatever this says); a body of known length goes out in big
		// writes.
		FlushInterval: 0,
		BufferPool:    proxyBuffers,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = targetOf(pr.In).addr
			pr.Out.Host = pr.In.Host // the service sees the URL the client used
			s.setForwarded(pr)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer
			}
			t := targetOf(r)
			s.error(w, r, previewFailure(t.id, t.port, err))
		},
	}
}

// tunnelTransport sends a preview request through the agent tunnels of
// its target sandbox (agentclient.PortTransport: pooled per port).
type tunnelTransport struct{}

func (tunnelTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t := targetOf(r)
	if t == nil {
		return nil, errors.New("preview request without a target")
	}
	return t.agent.PortTransport().RoundTrip(r)
}

// hostOnly strips the port from a Host header value.
func hostOnly(hostport string) string {
	if strings.IndexByte(hostport, ':') < 0 {
		return hostport // no port (SplitHostPort would allocate an error to say so)
	}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// parsePreviewLabel splits "{port}-{sandboxId}-{token}". Sandbox IDs hold
// '-' but tokens and ports never do: the port ends at the first '-', the
// token starts after the last.
func parsePreviewLabel(label string) (port int, id, token string, err error) {
	i, j := strings.IndexByte(label, '-'), strings.LastIndexByte(label, '-')
	if i < 0 || j <= i+1 {
		return 0, "", "", fmt.Errorf("want {port}-{sandboxId}-{token}")
	}
	portStr, id, token := label[:i], label[i+1:j], label[j+1:]
	port, err = strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != portStr {
		return 0, "", "", fmt.Errorf("port %q", portStr)
	}
	if !validPreviewID(id) { // the host is lower case already
		return 0, "", "", fmt.Errorf("sandbox id %q", label[i+1:j])
	}
	if !manager.ValidToken(token) {
		return 0, "", "", fmt.Errorf("token %q: want 1-16 characters of [a-z0-9_]", token)
	}
	return port, id, token, nil
}

// validPreviewID reports whether id is a valid lower-case sandbox ID, as
// manager.NormalizeID checks it (1-63 characters of [a-z0-9-], not
// starting or ending with '-'), without a regexp: it runs on every
// preview request.
func validPreviewID(id string) bool {
	if len(id) < 1 || len(id) > 63 || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// preview answers one request for a preview host: it checks the URL
// (exposed port, token, same container) and proxies the request to the
// port inside the sandbox through its agent. It never creates, starts or
// wakes a sandbox. uri, if not "", is what previewFastURI gives for r,
// found already (the connection loop's requests take the fast path).
func (s *server) preview(w http.ResponseWriter, r *http.Request, label string, rp *httputil.ReverseProxy, uri string) {
	port, id, token, err := parsePreviewLabel(label)
	if err != nil {
		s.error(w, r, &errdefs.CodedError{Code: api.CodeNotFound, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("%s is not a preview URL: %v", r.Host, err)})
		return
	}
	// Held from before the lookup, so that the sleeper cannot stop the
	// sandbox between finding it running and the request's end.
	defer s.mgr.Hold(id)()
	pt, err := s.mgr.Preview(r.Context(), id, port)
	if err != nil {
		s.error(w, r, err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(pt.Port.Token)) != 1 {
		s.error(w, r, &errdefs.CodedError{Code: api.CodeInvalidToken, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("wrong token for port %d of sandbox %s", port, id)})
		return
	}
	if pt.Stale {
		s.error(w, r, &errdefs.CodedError{Code: api.CodeStalePreviewURL,
			Message: fmt.Sprintf("sandbox %s restarted (or is not running) since port %d was exposed: expose the port again (it keeps its token)", id, port)})
		return
	}
	if r.ContentLength != 0 {
		// The request body streams to the service while its answer
		// streams back: without full duplex, the server would cut the
		// body's rest off once the answer's head goes out (the proxy's
		// upload then fails, and with it the download).
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	fast := uri != ""
	if !fast {
		uri, fast = previewFastURI(r)
	}
	if fast {
		s.previewFast(w, r, &previewTarget{id: id, port: port, agent: pt.Agent}, uri) // preview_fast.go
		return
	}
	t := &previewTarget{id: id, port: port, addr: "127.0.0.1:" + strconv.Itoa(port), agent: pt.Agent}
	rp.ServeHTTP(w, withTarget(r, t))
}

// previewFailure says why a preview request could not be proxied.
func previewFailure(id string, port int, err error) error {
	var ce *errdefs.CodedError
	switch {
	case errors.As(err, &ce):
		return err // PORT_NOT_LISTENING, from the agent
	case errors.Is(err, errdefs.ErrUnavailable):
		return &errdefs.CodedError{Code: api.CodeBadGateway,
			Message: fmt.Sprintf("sandbox %s cannot be reached (did it stop?): %v", id, err)}
	case errors.Is(err, context.DeadlineExceeded):
		return &errdefs.CodedError{Code: api.CodeBadGateway,
			Message: fmt.Sprintf("the service on port %d of sandbox %s timed out: %v", port, id, err)}
	default:
		return &errdefs.CodedError{Code: api.CodeBadGateway,
			Message: fmt.Sprintf("the service on port %d of sandbox %s failed: %v", port, id, err)}
	}
}

// forwardingHeaders are proxy information that only the daemon, or a
// trusted proxy, may give; from anyone else they are dropped (as are the
// daemon's own X-Sandboxd-* headers, from everyone).
var forwardingHeaders = []string{"Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Server", "X-Forwarded-Ssl"}

// setForwarded sets X-Forwarded-For, -Host and -Proto on the outgoing
// request and drops spoofable proxy and internal headers, and header
// names with '_'. From a trusted
// proxy, its X-Forwarded-* are kept (For is appended to).
func (s *server) setForwarded(pr *httputil.ProxyRequest) {
	trusted := s.trustedPeer(pr.In)
	for k := range pr.Out.Header {
		// Names with '_' are dropped too, as nginx and gunicorn do: a
		// service that reads them with dashes (CGI and WSGI map both to
		// HTTP_X_FORWARDED_FOR) would take X_Forwarded_For for the
		// header this sets.
		if strings.HasPrefix(k, "X-Sandboxd-") || strings.ContainsRune(k, '_') {
			delete(pr.Out.Header, k)
		}
	}
	if !trusted {
		for _, k := range forwardingHeaders {
			pr.Out.Header.Del(k)
		}
	}
	// Rewrite starts with no Forwarded or X-Forwarded-* on Out: a trusted
	// proxy's are put back (its X-Forwarded-For chain for SetXForwarded to
	// append to).
	if trusted {
		for _, k := range []string{"Forwarded", "X-Forwarded-For"} {
			if v := pr.In.Header.Values(k); len(v) > 0 {
				pr.Out.Header[k] = v
			}
		}
	}
	pr.SetXForwarded()
	if trusted {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "https" || v == "http" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
}

// trustedPeer reports whether r comes straight from a trusted proxy.
func (s *server) trustedPeer(r *http.Request) bool {
	if len(s.cfg.Preview.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range s.cfg.Preview.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Package preview serves preview URLs,
// http(s)://{port}-{sandboxId}-{token}.{domain}[:listenPort]/..., which
// reach a port on a sandbox's loopback without publishing it. A request
// whose Host is under the preview domain is preview traffic: it is checked
// (exposed port, token, same container) and proxied by one
// httputil.ReverseProxy, whose transport is the target sandbox's
// agentclient.PortTransport (sockets made in the sandbox's network
// namespace, or tunnels through its agent). Everything else goes to the
// API.
//
// The package makes errors; the API's error writer (Config.Error) turns
// them into statuses.
package preview

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
)

// Targets finds where preview requests go and keeps their sandboxes
// awake while they run. *manager.Manager is one.
type Targets interface {
	// Hold keeps sandbox id from being put to sleep until release is
	// called (once or more); the release counts as activity.
	Hold(id string) (release func())
	// Preview looks up port of sandbox id without creating, starting or
	// waking it. A port that is not exposed gives an error with code
	// PORT_NOT_EXPOSED; a sandbox that is not running, or runs in
	// another container than the port was exposed in, a target marked
	// Stale.
	Preview(ctx context.Context, id string, port int) (manager.PreviewTarget, error)
}

var _ Targets = (*manager.Manager)(nil)

// Config configures preview URLs.
type Config struct {
	// Domain is the preview domain (default "localhost", whose
	// subdomains browsers and curl resolve to loopback). A request whose
	// Host is a subdomain of it is preview traffic, never an API call.
	Domain string
	// TrustedProxies are the peers (such as a TLS-terminating proxy in
	// front of the daemon) whose X-Forwarded-For, -Host and -Proto
	// headers are believed and passed on; from any other peer they are
	// replaced.
	TrustedProxies []netip.Prefix
	Targets        Targets
	// Error answers a request that failed with err (the API's error
	// writer: the one place errors become statuses).
	Error  func(w http.ResponseWriter, r *http.Request, err error)
	Logger *slog.Logger
}

// Proxy serves preview traffic. It is safe for concurrent use.
type Proxy struct {
	cfg    Config
	suffix string // "." + cfg.Domain, lower case, without dots at its ends
	rp     *httputil.ReverseProxy
}

// New returns the preview proxy of cfg.
func New(cfg Config) *Proxy {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	domain := strings.ToLower(strings.Trim(cfg.Domain, "."))
	if domain == "" {
		domain = "localhost"
	}
	p := &Proxy{cfg: cfg, suffix: "." + domain}
	p.rp = &httputil.ReverseProxy{
		// FlushInterval is 0: a body of known length goes out in big
		// writes; event streams and bodies of unknown length are flushed
		// as they come (ReverseProxy flushes those at once whatever it
		// says).
		Transport:  transport{},
		BufferPool: buffers{},
		ErrorLog:   slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = targetOf(pr.In).addr
			pr.Out.Host = pr.In.Host // the service sees the URL the client used
			p.setForwarded(pr)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer
			}
			t := targetOf(r)
			p.cfg.Error(w, r, failure(t.id, t.port, err))
		},
	}
	return p
}

// Handler returns a handler that serves requests for preview hosts and
// passes everything else to next (the API). It runs before the API's
// routing and authentication: preview URLs carry their own token, and no
// API call is ever served on a preview host.
func (p *Proxy) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		label, ok := p.label(r.Host)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p.serve(w, r, label)
	})
}

// serve answers one request for a preview host: it checks the URL
// (exposed port, token, same container) and proxies the request to the
// port inside the sandbox. It never creates, starts or wakes a sandbox.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, label string) {
	port, id, token, err := parseLabel(label)
	if err != nil {
		p.cfg.Error(w, r, &errdefs.CodedError{Code: api.CodeNotFound, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("%s is not a preview URL: %v", r.Host, err)})
		return
	}
	// Held from before the lookup, so that the sleeper cannot stop the
	// sandbox between finding it running and the request's end (an
	// upgraded connection's end: ReverseProxy returns only then).
	defer p.cfg.Targets.Hold(id)()
	pt, err := p.cfg.Targets.Preview(r.Context(), id, port)
	if err != nil {
		p.cfg.Error(w, r, err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(pt.Port.Token)) != 1 {
		p.cfg.Error(w, r, &errdefs.CodedError{Code: api.CodeInvalidToken, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("wrong token for port %d of sandbox %s", port, id)})
		return
	}
	if pt.Stale {
		p.cfg.Error(w, r, &errdefs.CodedError{Code: api.CodeStalePreviewURL,
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
	t := &target{id: id, port: port, addr: "127.0.0.1:" + strconv.Itoa(port), agent: pt.Agent}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// target is where one preview request goes, carried in its context from
// serve to the proxy's hooks.
type target struct {
	id    string
	port  int
	addr  string // 127.0.0.1:port, as PortTransport wants it
	agent *agentclient.Client
}

type targetKey struct{}

func targetOf(r *http.Request) *target {
	t, _ := r.Context().Value(targetKey{}).(*target)
	return t
}

// transport sends a preview request to its target sandbox's
// PortTransport: an http.Transport per sandbox, its idle connections kept
// per port.
type transport struct{}

func (transport) RoundTrip(r *http.Request) (*http.Response, error) {
	return targetOf(r).agent.PortTransport().RoundTrip(r)
}

// failure says why a preview request could not be proxied.
func failure(id string, port int, err error) error {
	var ce *errdefs.CodedError
	if errors.As(err, &ce) {
		return err // PORT_NOT_LISTENING
	}
	msg := fmt.Sprintf("the service on port %d of sandbox %s failed: %v", port, id, err)
	switch {
	case errors.Is(err, errdefs.ErrUnavailable):
		msg = fmt.Sprintf("sandbox %s cannot be reached (did it stop?): %v", id, err)
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("the service on port %d of sandbox %s timed out: %v", port, id, err)
	}
	return &errdefs.CodedError{Code: api.CodeBadGateway, Message: msg}
}

// bufferSize is the proxy's copy buffer: a big body goes in few writes.
const bufferSize = 256 << 10

// buffers is the proxy's BufferPool.
type buffers struct{}

var bufferPool = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

func (buffers) Get() []byte  { return *bufferPool.Get().(*[]byte) }
func (buffers) Put(b []byte) { bufferPool.Put(&b) }

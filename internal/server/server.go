// Package server is the daemon's HTTP API (docs/API.md): routing, the
// bearer-token check, JSON bodies, and the one place where errors become
// HTTP statuses and wire codes. Handlers are thin: the work is in package
// manager and in the agent.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/metrics"
	"github.com/sandboxd/sandboxd/internal/preview"
)

// Config configures the API.
type Config struct {
	Manager *manager.Manager
	// Token is the bearer token every /v1 call must carry.
	Token string
	// Gatherer serves /metrics; nil serves none.
	Gatherer prometheus.Gatherer
	Metrics  *metrics.Metrics
	// MaxOutputBytes caps each output stream of exec kept in memory.
	MaxOutputBytes int
	Version        string
	Logger         *slog.Logger
	// Preview configures preview URLs (package preview); New fills in its
	// Targets, Error and Logger.
	Preview preview.Config
	// ReservedPorts may not be exposed: the ports the system itself uses
	// (the daemon's own listen port).
	ReservedPorts []int
	// Closing ends when the daemon begins to shut down. Terminal
	// WebSockets, which http.Server.Shutdown does not track once
	// upgraded, are closed then (terminal.go). Nil: never.
	Closing context.Context
}

// maxBodyBytes bounds JSON request bodies (a command of 1 MiB and its stdin
// fit easily).
const maxBodyBytes = 32 << 20

type server struct {
	cfg     Config
	mgr     *manager.Manager
	log     *slog.Logger
	preview *preview.Proxy
}

// New returns the daemon's HTTP handler: preview URLs, then the API.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &server{cfg: cfg, mgr: cfg.Manager, log: cfg.Logger}
	pc := cfg.Preview
	pc.Targets, pc.Error, pc.Logger = cfg.Manager, s.error, cfg.Logger
	s.preview = preview.New(pc)
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/sandboxes", s.listSandboxes)
	v1.HandleFunc("PUT /v1/sandboxes/{id}", s.withID(s.createSandbox))
	v1.HandleFunc("GET /v1/sandboxes/{id}", s.withID(s.getSandbox))
	v1.HandleFunc("PATCH /v1/sandboxes/{id}", s.withID(s.updateSandbox))
	v1.HandleFunc("DELETE /v1/sandboxes/{id}", s.withID(s.destroySandbox))
	v1.HandleFunc("POST /v1/sandboxes/{id}/exec", s.withID(s.exec("/v1/exec")))
	v1.HandleFunc("POST /v1/sandboxes/{id}/exec/stream", s.withID(s.exec("/v1/exec/stream")))
	// Sessions, processes, files, git and code: the agent checks and answers
	// them; bodies stream through (a file upload of any size in constant
	// memory).
	for _, route := range []struct{ method, path string }{
		{"POST", "/sessions"}, {"GET", "/sessions"}, {"DELETE", "/sessions/{sub}"}, {"POST", "/env"},
		{"POST", "/processes"}, {"GET", "/processes"}, {"DELETE", "/processes"},
		{"GET", "/processes/{sub}"}, {"DELETE", "/processes/{sub}"},
		{"GET", "/processes/{sub}/logs"}, {"GET", "/processes/{sub}/logs/stream"},
		{"POST", "/processes/{sub}/wait"},
		{"POST", "/files/write"}, {"POST", "/files/read"}, {"PUT", "/files/content"}, {"GET", "/files/content"},
		{"POST", "/files/mkdir"}, {"POST", "/files/delete"}, {"POST", "/files/rename"}, {"POST", "/files/move"},
		{"POST", "/files/list"}, {"POST", "/files/exists"}, {"GET", "/files/watch"},
		{"POST", "/git/checkout"},
		{"POST", "/contexts"}, {"GET", "/contexts"}, {"DELETE", "/contexts/{sub}"},
		{"POST", "/code/run"}, {"POST", "/code/run/stream"},
	} {
		v1.HandleFunc(route.method+" /v1/sandboxes/{id}"+route.path, s.withID(s.forward))
	}
	// The web terminal: a WebSocket forwarded to the agent (terminal.go).
	v1.HandleFunc("GET /v1/sandboxes/{id}/terminal", s.withID(s.terminal))
	// Exposed ports: the daemon's own (ports.go); their preview URLs are
	// served before this mux (package preview).
	v1.HandleFunc("POST /v1/sandboxes/{id}/ports", s.withID(s.exposePort))
	v1.HandleFunc("GET /v1/sandboxes/{id}/ports", s.withID(s.listPorts))
	v1.HandleFunc("DELETE /v1/sandboxes/{id}/ports/{port}", s.withID(s.unexposePort))
	v1.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, &errdefs.CodedError{Code: api.CodeNotFound, Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path), Kind: errdefs.ErrNotFound})
	})

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: cfg.Version})
	})
	if cfg.Gatherer != nil {
		root.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	root.Handle("/", s.auth(v1))
	return s.preview.Handler(root)
}

// auth rejects requests without the bearer token, comparing in constant
// time.
func (s *server) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if s.cfg.Token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandboxd"`)
			s.error(w, r, fmt.Errorf("%w: missing or wrong bearer token", errdefs.ErrUnauthorized))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withID normalizes and checks the {id} path value before calling h.
func (s *server) withID(h func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := manager.NormalizeID(r.PathValue("id"))
		if err != nil {
			s.error(w, r, err)
			return
		}
		h(w, r, id)
	}
}

// decode reads a JSON body into v, or answers the request with why it
// cannot and returns false. An empty body leaves v as it is when
// allowEmpty is set.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil || (allowEmpty && errors.Is(err, io.EOF)):
		return true
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("%w: a JSON body is required", errdefs.ErrInvalidArgument)
	case errors.As(err, &tooBig):
		err = fmt.Errorf("%w: body over %d bytes", errdefs.ErrPayloadTooLarge, tooBig.Limit)
	default:
		err = fmt.Errorf("%w: invalid JSON body: %v", errdefs.ErrInvalidArgument, err)
	}
	s.error(w, r, err)
	return false
}

// reply answers with err if it is not nil, else with status and v as JSON
// (nil: no body).
func (s *server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	switch {
	case err != nil:
		s.error(w, r, err)
	case v == nil:
		w.WriteHeader(status)
	default:
		writeJSON(w, status, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// error writes err as the wire's error body. This is the one place that
// turns errors into HTTP statuses.
func (s *server) error(w http.ResponseWriter, r *http.Request, err error) {
	code := errdefs.Code(err)
	status := api.HTTPStatus(code)
	body := api.Error{Code: code, Message: err.Error(), HTTPStatus: status}
	var ce *errdefs.CodedError
	if errors.As(err, &ce) {
		body.Details = ce.Details
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		log := s.log
		if id := r.PathValue("id"); id != "" {
			log = log.With("sandbox", strings.ToLower(id))
		}
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.APIErrors.WithLabelValues(code).Inc()
	}
	writeJSON(w, status, body)
}

// labelFilter parses ?label=k=v (repeatable).
func labelFilter(r *http.Request) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range r.URL.Query()["label"] {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: label filter %q: want key=value", errdefs.ErrInvalidArgument, l)
		}
		out[k] = v
	}
	return out, nil
}

// forward hands a sandbox-scoped request to the sandbox's agent as it is:
// /v1/sandboxes/{id}/rest becomes /v1/rest on the agent.
func (s *server) forward(w http.ResponseWriter, r *http.Request, id string) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/sandboxes/"+r.PathValue("id"))
	s.proxy(w, r, id, "/v1"+rest, nil)
}

package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/sandboxd/sandboxd/api"
)

// Defaults and environment variables read by [FromEnv].
const (
	// DefaultURL is the daemon's address when none is configured.
	DefaultURL = "http://127.0.0.1:8787"
	// DefaultTokenFile is where the daemon writes its API token.
	DefaultTokenFile = "/var/lib/sandboxd/token"
	// EnvURL names the environment variable holding the daemon's URL.
	EnvURL = "SANDBOX_URL"
	// EnvToken names the environment variable holding the API token.
	EnvToken = "SANDBOX_TOKEN"
)

// Options configure a [Client].
type Options struct {
	// URL is the daemon's base URL, without the /v1 suffix. Empty means
	// DefaultURL.
	URL string
	// Token is sent as "Authorization: Bearer <Token>" on every request.
	Token string
	// HTTPClient sends the requests. Nil means a client of the SDK's own
	// (http.DefaultTransport's settings with 256 KiB read and write buffers,
	// for big files and output streams). Its
	// Timeout, if any, bounds every call, including long-running commands;
	// prefer a context deadline.
	HTTPClient *http.Client
}

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	baseURL string
	token   string
	http    *http.Client
}

// NewClient returns a client for the daemon at opts.URL. It fails only if the
// URL is not an absolute http or https URL; it sends no request.
func NewClient(opts Options) (*Client, error) {
	raw := cmp.Or(opts.URL, DefaultURL)
	u, err := url.Parse(raw)
	if err == nil && ((u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		err = errors.New("want http://HOST[:PORT] or https://HOST[:PORT]")
	}
	if err != nil {
		return nil, fmt.Errorf("invalid daemon url %q: %w", raw, err)
	}
	c := &Client{
		baseURL: strings.TrimRight(raw, "/"),
		token:   opts.Token,
		http:    opts.HTTPClient,
	}
	if c.http == nil {
		c.http = defaultHTTPClient
	}
	return c, nil
}

// FromEnv returns a client configured from the environment: the URL from
// SANDBOX_URL (default DefaultURL) and the token from SANDBOX_TOKEN, else from
// DefaultTokenFile if that file is readable, else none.
func FromEnv() (*Client, error) {
	return NewClient(envOptions(os.Getenv, DefaultTokenFile))
}

// envOptions resolves FromEnv's options from getenv and tokenFile.
func envOptions(getenv func(string) string, tokenFile string) Options {
	opts := Options{URL: getenv(EnvURL), Token: getenv(EnvToken)}
	if opts.Token == "" {
		if b, err := os.ReadFile(tokenFile); err == nil {
			opts.Token = strings.TrimSpace(string(b))
		}
	}
	return opts
}

// Get returns a handle on the sandbox with the given ID. It sends no request:
// the daemon creates the sandbox, with default options, on the handle's first
// call that needs it. IDs are lowercased, as the daemon does.
func (c *Client) Get(id string) *Sandbox {
	return &Sandbox{target{c: c, sandboxID: strings.ToLower(id)}}
}

// Create creates the sandbox id with the options in req (nil for defaults)
// and returns a handle on it. If the sandbox exists already, the daemon
// applies the options it can take (SleepAfter, KeepAlive when true, Labels,
// Env) and returns ErrOptionsConflict for those it cannot (Image, Network,
// Resources, Cwd) when they differ from the sandbox's own.
func (c *Client) Create(ctx context.Context, id string, req *api.CreateSandboxRequest) (*Sandbox, error) {
	sb := c.Get(id)
	if req == nil {
		req = &api.CreateSandboxRequest{}
	}
	if _, err := call[none](ctx, &sb.target, "create sandbox "+sb.sandboxID, once, http.MethodPut, "", nil, req); err != nil {
		return nil, err
	}
	return sb, nil
}

// ListOptions filter [Client.List].
type ListOptions struct {
	// Labels keeps only the sandboxes that carry every one of these labels.
	Labels map[string]string
}

// List returns the sandboxes the daemon knows, filtered by opts.
func (c *Client) List(ctx context.Context, opts ListOptions) ([]api.Sandbox, error) {
	q := url.Values{}
	for _, k := range slices.Sorted(maps.Keys(opts.Labels)) {
		q.Add("label", k+"="+opts.Labels[k])
	}
	var list api.SandboxList
	if err := c.do(ctx, http.MethodGet, "/v1/sandboxes", q, nil, nil, &list); err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return list.Sandboxes, nil
}

// Health asks the daemon whether it is serving.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil, &h); err != nil {
		return nil, fmt.Errorf("health check: %w", err)
	}
	return &h, nil
}

// defaultHTTPClient is the client used when Options.HTTPClient is nil: the
// default transport's settings, with buffers sized for big bodies (the
// default 4 KiB would cost a syscall per 4 KiB of a file upload).
var defaultHTTPClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ReadBufferSize = 256 << 10
	tr.WriteBufferSize = 256 << 10
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}()

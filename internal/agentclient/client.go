// Package agentclient is the daemon's side of the agent protocol: an HTTP
// client over the Unix socket of one sandbox's agent. Keep-alive connections
// make a call cost about a tenth of a millisecond.
package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Client talks to one agent. It is safe for concurrent use.
type Client struct {
	socket string
	hc     *http.Client
	ports  portTransports // tunnels to ports in the sandbox (tunnel.go)
}

// New returns a client for the agent listening on socket.
func New(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
		// Output streams are big: read and write them in big pieces.
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 256 << 10,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// Transport returns the client's transport, for proxying requests to the
// agent (every URL goes to the agent's socket, whatever its host).
func (c *Client) Transport() http.RoundTripper { return c.hc.Transport }

// Classify turns an error of a round trip to the agent into the daemon's
// error classes, as do does for the client's own calls.
func Classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("%w: agent: %v", errdefs.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: connection to the sandbox's agent lost during the call: %v", errdefs.ErrInterrupted, err)
}

// Close drops the client's idle connections, tunnels included.
func (c *Client) Close() {
	c.hc.CloseIdleConnections()
	c.ports.close()
}

// CheckVersion returns an error unless the agent speaks ProtocolVersion.
func (c *Client) CheckVersion(ctx context.Context) error {
	var v agentapi.VersionResponse
	if err := c.do(ctx, http.MethodGet, "/v1/version", nil, &v); err != nil {
		return err
	}
	if v.Protocol != agentapi.ProtocolVersion {
		return fmt.Errorf("agent %s speaks protocol %d, the daemon needs %d", v.Version, v.Protocol, agentapi.ProtocolVersion)
	}
	return nil
}

// Exec runs a command and waits for it.
func (c *Client) Exec(ctx context.Context, req agentapi.ExecRequest) (*api.ExecResult, error) {
	var res api.ExecResult
	if err := c.do(ctx, http.MethodPost, "/v1/exec", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// SetEnv sets (or, for nil values, unsets) environment variables of the
// default session: its shell's, and those of its later commands.
func (c *Client) SetEnv(ctx context.Context, vars map[string]*string) error {
	return c.do(ctx, http.MethodPost, "/v1/env", api.SetEnvRequest{EnvVars: vars}, nil)
}

// maxAnswer bounds what the daemon reads of one agent answer: two output
// streams at their cap, base64-encoded, and the rest.
const maxAnswer = 256 << 20

// do sends a JSON request and decodes a JSON answer. An agent that cannot be
// reached (the request never got to it) gives an error wrapping
// errdefs.ErrUnavailable; a connection lost after the request was sent gives
// errdefs.ErrInterrupted; an error answer is rebuilt with its wire code.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return Classify(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e api.Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Code == "" {
			e = api.Error{Code: api.CodeInternal, Message: fmt.Sprintf("agent: %s: %s", resp.Status, bytes.TrimSpace(b)), HTTPStatus: resp.StatusCode}
		}
		if e.HTTPStatus == 0 {
			e.HTTPStatus = resp.StatusCode
		}
		return errdefs.FromWire(e)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: reading the agent's answer: %v", errdefs.ErrInterrupted, err)
	}
	return nil
}

package terminal

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// terminalParams are the query parameters of GET /v1/terminal.
type terminalParams struct {
	sessionID  string
	terminalID string
	cols, rows int    // 0: not given
	shell      string // "": the default shell
}

// parseTerminalQuery reads and checks the terminal's query parameters.
func parseTerminalQuery(q url.Values) (terminalParams, error) {
	p := terminalParams{sessionID: q.Get("sessionId"), terminalID: cmp.Or(q.Get("terminalId"), api.DefaultTerminalID), shell: q.Get("shell")}
	if !core.IDPattern.MatchString(p.terminalID) {
		return p, fmt.Errorf("%w: terminalId %q: 1-64 characters of [A-Za-z0-9._-]", errdefs.ErrInvalidArgument, p.terminalID)
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"cols", &p.cols}, {"rows", &p.rows}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxTerminalSize {
			return p, fmt.Errorf("%w: %s %q: want 1-%d", errdefs.ErrInvalidArgument, f.name, v, api.MaxTerminalSize)
		}
		*f.dst = n
	}
	if p.shell != "" && (!filepath.IsAbs(p.shell) || filepath.Clean(p.shell) != p.shell) {
		return p, fmt.Errorf("%w: shell %q: want a clean absolute path", errdefs.ErrInvalidArgument, p.shell)
	}
	return p, nil
}

// parseClientMessage reads a text frame from a terminal's client. The only
// message a client sends is resize.
func parseClientMessage(b []byte) (api.TerminalMessage, error) {
	var m api.TerminalMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("invalid message: %w", err)
	}
	switch m.Type {
	case api.TerminalResize:
		if m.Cols < 1 || m.Cols > api.MaxTerminalSize || m.Rows < 1 || m.Rows > api.MaxTerminalSize {
			return m, fmt.Errorf("resize to %dx%d: cols and rows must be 1-%d", m.Cols, m.Rows, api.MaxTerminalSize)
		}
		return m, nil
	case "":
		return m, fmt.Errorf("invalid message: no type")
	default:
		return m, fmt.Errorf("unknown message type %q", m.Type)
	}
}

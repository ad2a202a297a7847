package server

import (
	"context"
	"net/http"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// terminal forwards a terminal WebSocket to the agent, which runs the PTY.
// httputil.ReverseProxy passes the 101 answer through and then copies the
// upgraded connection both ways until either side closes it or the
// request's context ends, which shutdown (Config.Closing) ends too; the
// sandbox is held (never put to sleep) meanwhile. A request that is not a
// WebSocket handshake gets 426 without waking the sandbox.
func (s *server) terminal(w http.ResponseWriter, r *http.Request, id string) {
	if !agentapi.IsUpgrade(r.Header, "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		s.error(w, r, &errdefs.CodedError{Code: api.CodeUpgradeRequired, Kind: errdefs.ErrInvalidArgument,
			Message: "the terminal is a WebSocket: send a WebSocket handshake (Upgrade: websocket)"})
		return
	}
	if s.cfg.Closing != nil {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.cfg.Closing, cancel)
		defer stop()
		r = r.WithContext(ctx)
	}
	s.forward(w, r, id)
}

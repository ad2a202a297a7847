package api

import "time"

// Terminal messages: the JSON text frames of the terminal WebSocket
// (GET /v1/sandboxes/{id}/terminal). Binary frames carry the PTY's bytes,
// both ways, untouched.
const (
	// TerminalResize (client to server) sets the terminal's size: cols, rows.
	TerminalResize = "resize"
	// TerminalReady (server to client) is the first message of every
	// connection: which terminal it is, its size, and how many bytes of
	// replayed output follow in binary frames.
	TerminalReady = "ready"
	// TerminalExit (server to client) is the last message: the shell exited
	// with exitCode (128+N for signal N, as a shell reports it). The server
	// then closes the connection normally.
	TerminalExit = "exit"
	// TerminalError (server to client) reports a client message that was
	// refused; the connection stays open.
	TerminalError = "error"
)

// TerminalMessage is one text frame of the terminal WebSocket. Type says
// which fields are set:
//
//	resize  Cols, Rows
//	ready   TerminalID, SessionID, Shell, Pid, Cols, Rows; Reconnected (the
//	        connection joined a terminal already running); ReplayBytes
//	        (earlier output that follows in binary frames, before live output)
//	exit    ExitCode (the shell's status), Signal (the signal that ended it)
//	error   Message
type TerminalMessage struct {
	Type        string `json:"type"`
	Cols        int    `json:"cols,omitempty"`
	Rows        int    `json:"rows,omitempty"`
	TerminalID  string `json:"terminalId,omitempty"`
	SessionID   string `json:"sessionId,omitempty"`
	Shell       string `json:"shell,omitempty"`
	Pid         int    `json:"pid,omitempty"`
	Reconnected bool   `json:"reconnected,omitempty"`
	ReplayBytes int    `json:"replayBytes,omitempty"`
	ExitCode    *int   `json:"exitCode,omitempty"`
	Signal      string `json:"signal,omitempty"`
	Message     string `json:"message,omitempty"`
}

// Terminal limits.
const (
	// DefaultTerminalID names the terminal a connection without terminalId
	// joins: one per session.
	DefaultTerminalID = "default"
	// MaxTerminals is how many terminals a sandbox runs at once (shells
	// that exited do not count); past it, 429 RESOURCE_EXHAUSTED.
	MaxTerminals = 16
	// TerminalReplayBytes is how much of a terminal's latest output a new
	// connection receives first.
	TerminalReplayBytes = 64 << 10
	// TerminalDetachedTimeout is how long a terminal with no connection
	// keeps running before its shell is killed.
	TerminalDetachedTimeout = 5 * time.Minute
	// MaxTerminalSize bounds cols and rows.
	MaxTerminalSize = 1000
)

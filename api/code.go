package api

import (
	"encoding/json"
	"time"
)

// Code interpreter languages.
const (
	LanguagePython     = "python"
	LanguageJavaScript = "javascript"
	LanguageTypeScript = "typescript"
)

// MaxCodeContexts is how many code contexts one sandbox may hold at once by
// default (the daemon's --max-contexts changes it); creating one more gives
// 429 RESOURCE_EXHAUSTED.
const MaxCodeContexts = 32

// CreateCodeContextRequest is the body of POST /v1/sandboxes/{id}/contexts.
// Language defaults to "python", Cwd to /workspace. EnvVars are added to
// the executor's environment (over the sandbox's).
type CreateCodeContextRequest struct {
	Language string `json:"language,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
	EnvVars  Env    `json:"envVars,omitempty"`
}

// CodeContext describes one code context: an interpreter whose state
// (variables, imports, functions) carries from run to run.
type CodeContext struct {
	ID        string    `json:"id"`
	Language  string    `json:"language"`
	Cwd       string    `json:"cwd"`
	CreatedAt time.Time `json:"createdAt"`
	LastUsed  time.Time `json:"lastUsed"`
}

// CodeContextList is the body of GET /v1/sandboxes/{id}/contexts.
type CodeContextList struct {
	Contexts []CodeContext `json:"contexts"`
	Count    int           `json:"count"`
}

// RunCodeRequest is the body of POST /v1/sandboxes/{id}/code/run and of
// its /stream form. Without ContextID the language's default context runs
// the code (created on first use); Language defaults to "python". Given
// both, they must agree.
type RunCodeRequest struct {
	Code      string `json:"code"`
	ContextID string `json:"contextId,omitempty"`
	Language  string `json:"language,omitempty"`
	TimeoutMs int64  `json:"timeoutMs,omitempty"`
}

// Logs is the output a run printed, one entry per write.
type Logs struct {
	Stdout []string `json:"stdout"`
	Stderr []string `json:"stderr"`
}

// Result is one rich output of a run: the value of its last expression, a
// display() call, a matplotlib figure. It holds whichever formats the value
// provides; images (PNG, JPEG) are base64-encoded, SVG is text. JSON holds
// a JSON value as it is. IsMainResult marks the last expression's value.
type Result struct {
	Text         string          `json:"text,omitempty"`
	HTML         string          `json:"html,omitempty"`
	PNG          string          `json:"png,omitempty"`
	JPEG         string          `json:"jpeg,omitempty"`
	SVG          string          `json:"svg,omitempty"`
	Latex        string          `json:"latex,omitempty"`
	Markdown     string          `json:"markdown,omitempty"`
	JSON         json.RawMessage `json:"json,omitempty"`
	JavaScript   string          `json:"javascript,omitempty"`
	IsMainResult bool            `json:"isMainResult,omitempty"`
}

// ExecutionError is how a run failed: the exception's (or error's) class
// name, its message and the traceback lines.
type ExecutionError struct {
	Name      string   `json:"name"`
	Value     string   `json:"value"`
	Traceback []string `json:"traceback"`
}

// ExecutionResult is the response of POST /v1/sandboxes/{id}/code/run.
// Success is false when Error is set. ContextID names the context that ran
// the code. ContextReset is set when the context's interpreter had to be
// restarted (a run that could not be interrupted, a crash): its state is
// gone.
type ExecutionResult struct {
	Code           string          `json:"code"`
	Success        bool            `json:"success"`
	Logs           Logs            `json:"logs"`
	Results        []Result        `json:"results"`
	Error          *ExecutionError `json:"error,omitempty"`
	ExecutionCount int             `json:"executionCount"`
	ContextID      string          `json:"contextId,omitempty"`
	ContextReset   bool            `json:"contextReset,omitempty"`
	// Truncated says Logs lost output past the cap (16 MiB per stream),
	// or Results past 64 MiB; the stream form is not capped.
	Truncated bool `json:"truncated,omitempty"`
}

// EventResult is the event type of a result of POST
// /v1/sandboxes/{id}/code/run/stream, besides stdout, stderr, error and
// complete (EventStdout...).
const EventResult = "result"

// CodeEvent is the data of one Server-Sent Event of
// POST /v1/sandboxes/{id}/code/run/stream. Type repeats the event's name;
// the other fields depend on it:
//
//	stdout   Text
//	stderr   Text
//	result   the Result's fields (Text, HTML, PNG...; see AsResult)
//	error    Name, Value, Traceback: the run failed (the stream goes on to
//	         complete); or Code, Message: the call failed (a terminal event)
//	complete ExecutionCount, ContextID, ContextReset
type CodeEvent struct {
	Type string `json:"type"`
	// Result: a result event's formats; Text is also stdout's and
	// stderr's text.
	Result
	Name           string   `json:"name,omitempty"`
	Value          string   `json:"value,omitempty"`
	Traceback      []string `json:"traceback,omitempty"`
	Code           string   `json:"code,omitempty"`
	Message        string   `json:"message,omitempty"`
	ExecutionCount *int     `json:"executionCount,omitempty"`
	ContextID      string   `json:"contextId,omitempty"`
	ContextReset   bool     `json:"contextReset,omitempty"`
}

// AsResult returns the Result a result event carries.
func (e *CodeEvent) AsResult() Result { return e.Result }

// ResultEvent returns the result event that carries r.
func ResultEvent(r Result) CodeEvent { return CodeEvent{Type: EventResult, Result: r} }

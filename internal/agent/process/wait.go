package process

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// portPoll is how often a port wait tries to connect: there is no event for
// "something listens now" that reaches into another process.
const portPoll = 50 * time.Millisecond

// handleWait waits for a log pattern, a port or the exit of a process.
func (p *Registry) handleWait(r *http.Request, req *api.WaitRequest, pr *proc) (*api.WaitResult, error) {
	var wait func(context.Context, *proc, api.WaitRequest) (*api.WaitResult, error)
	switch log, port := req.Log != "", req.Port != 0; {
	case req.Exit && !log && !port:
		wait = waitExit
	case log && !req.Exit && !port:
		wait = waitLog
	case port && !req.Exit && !log:
		wait = waitPort
	default:
		return nil, fmt.Errorf("%w: give exactly one of log, port and exit", errdefs.ErrInvalidArgument)
	}
	if req.TimeoutMs < 0 {
		return nil, fmt.Errorf("%w: timeoutMs must not be negative", errdefs.ErrInvalidArgument)
	}
	ctx := r.Context()
	if req.TimeoutMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMs)*time.Millisecond)
		defer cancel()
	}
	res, err := wait(ctx, pr, *req)
	if err != nil {
		if ctx.Err() != nil && r.Context().Err() == nil {
			err = &errdefs.CodedError{Code: api.CodeTimeout, Kind: errdefs.ErrTimeout,
				Message: fmt.Sprintf("process %s: not ready after %d ms", pr.id, req.TimeoutMs)}
		}
		return nil, err
	}
	if req.Exit {
		p.cleanupIfDone(pr)
	}
	return res, nil
}

func waitExit(ctx context.Context, pr *proc, _ api.WaitRequest) (*api.WaitResult, error) {
	select {
	case <-pr.done:
		info := pr.info()
		return &api.WaitResult{Ready: true, ExitCode: info.ExitCode, Status: info.Status}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exitedFirst is the error of a wait whose process exited before it was
// met (pr.done is closed).
func exitedFirst(pr *proc, what string) error {
	info := pr.info()
	code := *info.ExitCode
	return &errdefs.CodedError{Code: api.CodeProcessExited, Kind: errdefs.ErrConflict,
		Message: fmt.Sprintf("process %s exited (code %d, %s) before %s", pr.id, code, info.Status, what),
		Details: map[string]any{"exitCode": code, "status": info.Status}}
}

// waitLog reads the process's output from the start, following it live,
// until the pattern matches: a substring anywhere in the stream, or a
// regular expression matched against each line (and the line so far).
func waitLog(ctx context.Context, pr *proc, req api.WaitRequest) (*api.WaitResult, error) {
	match := func(line []byte) bool { return bytes.Contains(line, []byte(req.Log)) }
	if req.Regex {
		re, err := regexp.Compile(req.Log)
		if err != nil {
			return nil, fmt.Errorf("%w: log pattern: %v", errdefs.ErrInvalidArgument, err)
		}
		match = re.Match
	}
	want := map[byte]bool{streamStdout: true, streamStderr: true}
	switch req.Stream {
	case "", "both":
	case "stdout":
		want[streamStderr] = false
	case "stderr":
		want[streamStdout] = false
	default:
		return nil, fmt.Errorf("%w: stream %q: stdout, stderr or both", errdefs.ErrInvalidArgument, req.Stream)
	}
	pending := map[byte][]byte{} // per stream: the current line so far
	var line string
	err := pr.log.follow(ctx, 0, func(rec record) bool {
		var ok bool
		if want[rec.stream] {
			line, ok = matchChunk(pending, rec, match)
		}
		return !ok
	})
	switch err {
	case nil:
		return &api.WaitResult{Ready: true, Line: line}, nil
	case io.EOF:
		return nil, exitedFirst(pr, fmt.Sprintf("its output matched %q", req.Log))
	}
	return nil, err
}

// matchChunk adds a record to its stream's current line(s) and reports the
// first line that matches (the line so far included).
func matchChunk(pending map[byte][]byte, rec record, match func([]byte) bool) (string, bool) {
	rest := append(pending[rec.stream], rec.data...)
	for {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if match(line) {
			return string(line), true
		}
		if !found {
			break
		}
		rest = after
	}
	if len(rest) > 1<<20 { // a line without end: keep its tail only
		rest = rest[len(rest)-(1<<20):]
	}
	pending[rec.stream] = append([]byte(nil), rest...)
	return "", false
}

// waitPort waits until the port accepts a connection inside the sandbox
// (mode tcp) or answers GET path with a status in range (mode http).
func waitPort(ctx context.Context, pr *proc, req api.WaitRequest) (*api.WaitResult, error) {
	if req.Port < 1 || req.Port > 65535 {
		return nil, fmt.Errorf("%w: port %d", errdefs.ErrInvalidArgument, req.Port)
	}
	lo, hi, err := parseStatusRange(cmp.Or(req.Status, "200-399"))
	if err != nil {
		return nil, err
	}
	mode := cmp.Or(req.PortMode, "tcp")
	if mode != "tcp" && mode != "http" {
		return nil, fmt.Errorf("%w: portMode %q: tcp or http", errdefs.ErrInvalidArgument, mode)
	}
	path := req.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(req.Port))
	client := &http.Client{
		Timeout:       2 * time.Second,
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tick := time.NewTicker(portPoll)
	defer tick.Stop()
	for {
		if mode == "tcp" {
			d := net.Dialer{Timeout: time.Second}
			if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
				c.Close()
				return &api.WaitResult{Ready: true}, nil
			}
		} else {
			hreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
			if resp, err := client.Do(hreq); err == nil {
				resp.Body.Close()
				if resp.StatusCode >= lo && resp.StatusCode <= hi {
					return &api.WaitResult{Ready: true, Status: strconv.Itoa(resp.StatusCode)}, nil
				}
			}
		}
		select {
		case <-pr.done:
			return nil, exitedFirst(pr, fmt.Sprintf("port %d was ready", req.Port))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// parseStatusRange reads "200" or "200-399".
func parseStatusRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("%w: status %q: like 200 or 200-399", errdefs.ErrInvalidArgument, s)
	}
	return lo, hi, nil
}

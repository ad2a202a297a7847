package terminal

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestParseClientMessage(t *testing.T) {
	for _, tc := range []struct {
		in         string
		cols, rows int
		err        string
	}{
		{in: `{"type":"resize","cols":120,"rows":40}`, cols: 120, rows: 40},
		{in: `{"type":"resize","cols":1,"rows":1000,"extra":true}`, cols: 1, rows: 1000},
		{in: `{"type":"resize","cols":0,"rows":40}`, err: "1-1000"},
		{in: `{"type":"resize","cols":80,"rows":1001}`, err: "1-1000"},
		{in: `{"type":"resize","cols":-5,"rows":10}`, err: "1-1000"},
		{in: `{"type":"resize","cols":"80","rows":24}`, err: "invalid message"},
		{in: `{"type":"ping"}`, err: `unknown message type "ping"`},
		{in: `{"cols":80}`, err: "no type"},
		{in: `not json`, err: "invalid message"},
		{in: ``, err: "invalid message"},
	} {
		m, err := parseClientMessage([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parse %q: err %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.Type != api.TerminalResize || m.Cols != tc.cols || m.Rows != tc.rows {
			t.Errorf("parse %q = %+v, %v; want resize %dx%d", tc.in, m, err, tc.cols, tc.rows)
		}
	}
}

func TestParseTerminalQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  terminalParams
		err   bool
	}{
		{query: "", want: terminalParams{terminalID: api.DefaultTerminalID}},
		{query: "sessionId=s1&terminalId=t.2&cols=120&rows=30&shell=/bin/sh",
			want: terminalParams{sessionID: "s1", terminalID: "t.2", cols: 120, rows: 30, shell: "/bin/sh"}},
		{query: "terminalId=a/b", err: true},
		{query: "terminalId=" + strings.Repeat("x", 65), err: true},
		{query: "cols=0", err: true},
		{query: "rows=abc", err: true},
		{query: "cols=1001", err: true},
		{query: "shell=bash", err: true},
		{query: "shell=/bin/../bin/bash", err: true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseTerminalQuery(q)
		if tc.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("query %q: err %v, want an invalid argument", tc.query, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("query %q = %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestOperationsAndAgentErrorsAreCounted: calls forwarded to an agent are
// counted by route and outcome, and the agent's error answers by their
// code, passing through unchanged; exec calls by outcome.
func TestOperationsAndAgentErrorsAreCounted(t *testing.T) {
	srv := newServer(t)
	if st, e, _ := call(t, srv, "POST", "/v1/sandboxes/obs/files/read", token, `{"path":"/nonexistent/file"}`); st != http.StatusNotFound || e.Code != "FILE_NOT_FOUND" {
		t.Fatalf("read of a missing file: %d %+v", st, e)
	}
	if st, _, _ := call(t, srv, "POST", "/v1/sandboxes/obs/exec", token, `{"command":"true"}`); st != http.StatusOK {
		t.Fatalf("exec: %d", st)
	}
	if st, _, _ := call(t, srv, "POST", "/v1/sandboxes/obs/exec", token, `{"command":"true","sessionId":"nope"}`); st != http.StatusNotFound {
		t.Fatalf("exec in a missing session: %d", st)
	}
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`sandboxd_api_errors_total{code="FILE_NOT_FOUND"} 1`,
		`sandboxd_operations_total{op="POST /files/read",outcome="error"} 1`,
		`sandboxd_operations_total{op="POST /exec",outcome="ok"} 1`,
		`sandboxd_exec_total{outcome="ok"} 1`,
		`sandboxd_exec_total{outcome="error"} 1`,
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("no %s in /metrics", want)
		}
	}
}

package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
	"github.com/sandboxd/sandboxd/internal/server"
)

const token = "secret-token"

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	env := managertest.New(t)
	srv := httptest.NewServer(server.New(server.Config{Manager: env.Manager, Token: token, Gatherer: env.Registry, Metrics: env.Metrics}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, tok, body string) (int, api.Error, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("%s %s: error body is not JSON: %q", method, path, b)
		}
		if e.HTTPStatus != resp.StatusCode {
			t.Errorf("%s %s: httpStatus %d in a %d response", method, path, e.HTTPStatus, resp.StatusCode)
		}
	}
	return resp.StatusCode, e, string(b)
}

func TestAPI(t *testing.T) {
	srv := newServer(t)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
		contains                        string
	}{
		{"no token", "GET", "/v1/sandboxes", "", "", 401, api.CodeUnauthorized, ""},
		{"wrong token", "POST", "/v1/sandboxes/a/exec", "nope", `{"command":"true"}`, 401, api.CodeUnauthorized, ""},
		{"token prefix", "GET", "/v1/sandboxes", token[:5], "", 401, api.CodeUnauthorized, ""},
		{"healthz open", "GET", "/healthz", "", "", 200, "", `"ok"`},
		{"metrics open", "GET", "/metrics", "", "", 200, "", "sandboxd_"},
		{"bad id", "POST", "/v1/sandboxes/bad_id/exec", token, `{"command":"true"}`, 400, api.CodeValidationFailed, ""},
		{"long id", "PUT", "/v1/sandboxes/" + strings.Repeat("x", 64), token, ``, 400, api.CodeValidationFailed, ""},
		{"bad json", "POST", "/v1/sandboxes/a/exec", token, `{"command":`, 400, api.CodeValidationFailed, ""},
		{"no body", "POST", "/v1/sandboxes/a/exec", token, ``, 400, api.CodeValidationFailed, ""},
		{"no command", "POST", "/v1/sandboxes/a/exec", token, `{}`, 400, api.CodeValidationFailed, ""},
		{"negative timeout", "POST", "/v1/sandboxes/a/exec", token, `{"command":"true","timeoutMs":-1}`, 400, api.CodeValidationFailed, ""},
		{"unknown session", "POST", "/v1/sandboxes/a/exec", token, `{"command":"true","sessionId":"nope"}`, 404, api.CodeSessionNotFound, ""},
		{"unknown route", "GET", "/v1/nothing", token, ``, 404, api.CodeNotFound, ""},
		{"get missing", "GET", "/v1/sandboxes/missing", token, ``, 404, api.CodeSandboxNotFound, ""},
		{"patch missing", "PATCH", "/v1/sandboxes/missing", token, `{"keepAlive":true}`, 404, api.CodeSandboxNotFound, ""},
		{"delete missing", "DELETE", "/v1/sandboxes/missing", token, ``, 204, "", ""},
		{"bad label filter", "GET", "/v1/sandboxes?label=nokey", token, ``, 400, api.CodeValidationFailed, ""},
		{"missing image", "PUT", "/v1/sandboxes/img", token, `{"image":"nope"}`, 400, api.CodeValidationFailed, ""},
		{"image path", "PUT", "/v1/sandboxes/img", token, `{"image":"../../etc"}`, 400, api.CodeValidationFailed, ""},
		{"create", "PUT", "/v1/sandboxes/made", token, `{"labels":{"k":"v"}}`, 201, "", `"status":"running"`},
		{"create again", "PUT", "/v1/sandboxes/made", token, ``, 200, "", `"id":"made"`},
		{"exec", "POST", "/v1/sandboxes/Made/exec", token, `{"command":"echo hi; (exit 3)"}`, 200, "", `"exitCode":3`},
		{"shell exit", "POST", "/v1/sandboxes/made/exec", token, `{"command":"exit 4"}`, 410, api.CodeSessionTerminated, `"exitCode":4`},
		{"fresh shell", "POST", "/v1/sandboxes/made/exec", token, `{"command":"echo back"}`, 200, "", `"stdout":"back\n"`},
		{"exec creates", "POST", "/v1/sandboxes/new-one/exec", token, `{"command":"true"}`, 200, "", `"success":true`},
		{"list", "GET", "/v1/sandboxes?label=k=v", token, ``, 200, "", `"count":1`},
		{"nul in command", "POST", "/v1/sandboxes/a/exec", token, `{"command":"echo a\u0000b"}`, 400, api.CodeValidationFailed, ""},
		{"bad env name", "POST", "/v1/sandboxes/a/exec", token, `{"command":"true","env":{"A=B":"c"}}`, 400, api.CodeValidationFailed, ""},
		{"relative cwd", "POST", "/v1/sandboxes/a/exec", token, `{"command":"true","cwd":"tmp"}`, 400, api.CodeValidationFailed, ""},
		{"disk quota too small", "PUT", "/v1/sandboxes/disk", token, `{"resources":{"diskMB":1}}`, 400, api.CodeValidationFailed, ""},
		{"failed first start", "POST", "/v1/sandboxes/fail-start/exec", token, `{"command":"true"}`, 500, api.CodeInternal, "simulated"},
		{"rolled back", "GET", "/v1/sandboxes/fail-start", token, ``, 404, api.CodeSandboxNotFound, ""},
		{"huge body", "POST", "/v1/sandboxes/a/exec", token, `{"command":"` + strings.Repeat("x", 33<<20) + `"}`, 413, api.CodePayloadTooLarge, ""},
	}
	for _, c := range cases {
		status, e, body := call(t, srv, c.method, c.path, c.token, c.body)
		if status != c.status || e.Code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s %.200s; want %d %s containing %q", c.name, status, e.Code, body, c.status, c.code, c.contains)
		}
	}
	// The refused calls created nothing ("a" exists from the unknown
	// session's call, which the agent answered).
	if _, _, body := call(t, srv, "GET", "/v1/sandboxes", token, ""); !strings.Contains(body, `"count":3`) {
		t.Errorf("sandboxes after the calls: %s", body)
	}
}

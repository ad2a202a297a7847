package core_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

type echoReq struct {
	Say string `json:"say"`
}

// TestJSONAdapter: the adapter decodes the body (or none), sends the
// answer with the status, a Status as a bare status, and an error as the
// wire's error with its code.
func TestJSONAdapter(t *testing.T) {
	echo := core.JSON(http.StatusCreated, func(r *http.Request, req *echoReq) (map[string]string, error) {
		if req.Say == "" {
			return nil, fmt.Errorf("%w: say something", errdefs.ErrInvalidArgument)
		}
		return map[string]string{"said": req.Say}, nil
	})
	gone := core.JSON(http.StatusOK, func(r *http.Request, _ *core.NoBody) (core.Status, error) {
		return core.Status(http.StatusNoContent), nil
	})
	for _, c := range []struct {
		name string
		h    http.HandlerFunc
		body string
		code int
		want string
	}{
		{"answer", echo, `{"say":"hi"}`, 201, `{"said":"hi"}`},
		{"error", echo, `{}`, 400, `"code":"VALIDATION_FAILED"`},
		{"not JSON", echo, `{`, 400, `"code":"VALIDATION_FAILED"`},
		{"no body read", gone, `not JSON at all`, 204, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c.h(w, httptest.NewRequest("POST", "/", strings.NewReader(c.body)))
			b, _ := io.ReadAll(w.Body)
			if w.Code != c.code || !strings.Contains(string(b), c.want) || (c.want == "" && len(b) != 0) {
				t.Errorf("%d %s; want %d with %s", w.Code, b, c.code, c.want)
			}
		})
	}
}

package sandbox

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

// codeSSE is a canned code stream response with the events given as JSON
// data (each carries its type).
func codeSSE(events ...string) response {
	var b strings.Builder
	for i, data := range events {
		typ := data[strings.Index(data, `"type":"`)+8:]
		typ = typ[:strings.IndexByte(typ, '"')]
		writeSSE(&b, typ, strconv.Itoa(i+1), data)
	}
	return response{status: 200, header: http.Header{"Content-Type": {"text/event-stream"}}, body: b.String()}
}

const contextJSON = `{"id":"ctx-1","language":"python","cwd":"/workspace","createdAt":"2026-11-25T12:00:00Z","lastUsed":"2026-11-25T12:00:00Z"}`

func TestCodeRequests(t *testing.T) {
	png := base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nrest"))
	tests := []requestCase{{
		name: "create context",
		call: func(ctx context.Context, c *Client) error {
			cc, err := c.Get("demo").CreateCodeContext(ctx, &CodeContextOptions{Language: "javascript", Cwd: "/tmp", EnvVars: map[string]string{"A": "1"}})
			if err == nil && cc.ID != "ctx-1" {
				t.Errorf("context %+v", cc)
			}
			return err
		},
		resp: response{status: 201, body: contextJSON},
		want: request{method: "POST", path: "/v1/sandboxes/demo/contexts", body: `{"language":"javascript","cwd":"/tmp","envVars":{"A":"1"}}`},
	}, {
		name: "list contexts",
		call: func(ctx context.Context, c *Client) error {
			list, err := c.Get("demo").ListCodeContexts(ctx)
			if err == nil && (len(list) != 1 || list[0].Language != "python") {
				t.Errorf("list %+v", list)
			}
			return err
		},
		resp: response{status: 200, body: `{"contexts":[` + contextJSON + `],"count":1}`},
		want: request{method: "GET", path: "/v1/sandboxes/demo/contexts"},
	}, {
		name: "delete context escapes its id",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").DeleteCodeContext(ctx, "a/b") },
		resp: response{status: 204},
		want: request{method: "DELETE", path: "/v1/sandboxes/demo/contexts/a%2Fb"},
	}, {
		name: "run code",
		call: func(ctx context.Context, c *Client) error {
			res, err := c.Get("demo").RunCode(ctx, "1+1", &RunCodeOptions{ContextID: "ctx-1", Timeout: 1500})
			if err == nil {
				if b, ok := res.Results[1].PNGBytes(); res.Text() != "2" || !ok || string(b[:4]) != "\x89PNG" || len(res.PNGs()) != 1 {
					t.Errorf("result %+v", res)
				}
			}
			return err
		},
		resp: response{status: 200, body: `{"code":"1+1","success":true,"logs":{"stdout":[],"stderr":[]},"results":[{"text":"2","isMainResult":true},{"png":"` + png + `"}],"executionCount":1}`},
		want: request{method: "POST", path: "/v1/sandboxes/demo/code/run", body: `{"code":"1+1","contextId":"ctx-1","timeoutMs":1}`},
	}, {
		name: "run code with callbacks streams",
		call: func(ctx context.Context, c *Client) error {
			var seen []string
			res, err := c.Get("demo").RunCode(ctx, "x", &RunCodeOptions{
				Language: "python",
				OnStdout: func(s string) { seen = append(seen, "out:"+s) },
				OnStderr: func(s string) { seen = append(seen, "err:"+s) },
				OnResult: func(r Result) { seen = append(seen, "result:"+strings.Join(r.Formats(), ",")) },
				OnError:  func(e api.ExecutionError) { seen = append(seen, "error:"+e.Name) },
			})
			if err != nil {
				return err
			}
			if got := strings.Join(seen, "|"); got != "out:a\n|err:b\n|result:text,html,json|error:NameError" {
				t.Errorf("callbacks %q", got)
			}
			if res.Success || res.Error.Value != "x" || res.ExecutionCount != 4 || res.ContextID != "default-python" || !res.ContextReset ||
				string(res.Results[0].JSON) != `{"k":1}` || res.Logs.Stdout[0] != "a\n" {
				t.Errorf("result %+v", res)
			}
			return nil
		},
		resp: codeSSE(`{"type":"stdout","text":"a\n"}`, `{"type":"stderr","text":"b\n"}`,
			`{"type":"result","text":"t","html":"<b>","json":{"k":1}}`,
			`{"type":"error","name":"NameError","value":"x","traceback":["l1"]}`,
			`{"type":"complete","executionCount":4,"contextId":"default-python","contextReset":true}`),
		want: request{method: "POST", path: "/v1/sandboxes/demo/code/run/stream", body: `{"code":"x","language":"python"}`},
	}}
	checkRequests(t, tests)
}

func TestCodeStreamErrors(t *testing.T) {
	t.Run("a call error ends the stream", func(t *testing.T) {
		c, _ := newFake(t, codeSSE(`{"type":"stdout","text":"a"}`, `{"type":"error","code":"CONTEXT_NOT_FOUND","message":"gone"}`))
		st, err := c.Get("demo").RunCodeStream(t.Context(), "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Wait()
		if !errors.Is(err, ErrContextNotFound) {
			t.Errorf("err = %v, want ErrContextNotFound", err)
		}
	})
	t.Run("a stream cut before complete", func(t *testing.T) {
		c, _ := newFake(t, codeSSE(`{"type":"stdout","text":"a"}`))
		st, err := c.Get("demo").RunCodeStream(t.Context(), "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Wait(); err == nil {
			t.Error("Wait succeeded on a cut stream")
		}
	})
	t.Run("a refused run", func(t *testing.T) {
		c, _ := newFake(t, response{status: 501, body: `{"code":"LANGUAGE_NOT_AVAILABLE","message":"no node","httpStatus":501}`})
		_, err := c.Get("demo").RunCode(t.Context(), "x", &RunCodeOptions{Language: "javascript"})
		if !errors.Is(err, ErrLanguageNotAvailable) {
			t.Errorf("err = %v", err)
		}
	})
}

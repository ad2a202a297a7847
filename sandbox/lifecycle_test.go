package sandbox

import (
	"context"
	"testing"
	"time"
)

func TestLifecycleRequests(t *testing.T) {
	checkRequests(t, []requestCase{{
		name: "keep alive",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").SetKeepAlive(ctx, true) },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "PATCH", path: "/v1/sandboxes/demo", body: `{"keepAlive":true}`},
	}, {
		name: "keep alive off",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").SetKeepAlive(ctx, false) },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "PATCH", path: "/v1/sandboxes/demo", body: `{"keepAlive":false}`},
	}, {
		name: "sleep after",
		call: func(ctx context.Context, c *Client) error { return c.Get("demo").SetSleepAfter(ctx, 90*time.Second) },
		resp: response{status: 200, body: sandboxJSON},
		want: request{method: "PATCH", path: "/v1/sandboxes/demo", body: `{"sleepAfter":"1m30s"}`},
	}})
}

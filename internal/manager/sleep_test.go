package manager_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
	"github.com/sandboxd/sandboxd/internal/metrics"
)

func newManager(t *testing.T) (*manager.Manager, *managertest.Runtime, *metrics.Metrics) {
	t.Helper()
	env := managertest.New(t)
	return env.Manager, env.Runtime, env.Metrics
}

func status(t *testing.T, m *manager.Manager, id string) string {
	t.Helper()
	sb, err := m.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sb.Status
}

// eventually waits up to within for cond.
func eventually(within time.Duration, cond func() bool) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestSleepAfterIdle(t *testing.T) {
	m, rt, met := newManager(t)
	ctx := context.Background()
	if _, _, err := m.Create(ctx, "idle", api.CreateSandboxRequest{SleepAfter: "1s"}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if !eventually(10*time.Second, func() bool { return status(t, m, "idle") == api.StatusSleeping }) {
		t.Fatalf("status %s 10s after the last call, sleepAfter 1s", status(t, m, "idle"))
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("slept after %v, before its sleepAfter", took)
	}
	if rt.Running("idle") {
		t.Error("asleep, but its container was not stopped")
	}
	// A call wakes it.
	if _, err := m.Agent(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if s := status(t, m, "idle"); s != api.StatusRunning || !rt.Running("idle") {
		t.Errorf("after a call: %s", s)
	}
	var wake, sleeps dto.Metric
	if err := met.WakeSeconds.Write(&wake); err != nil || wake.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("wake latencies observed: %v %v", wake.GetHistogram().GetSampleCount(), err)
	}
	if err := met.SleepsTotal.Write(&sleeps); err != nil || sleeps.GetCounter().GetValue() != 1 {
		t.Errorf("sleeps counted: %v %v", sleeps.GetCounter().GetValue(), err)
	}
}

func TestHoldAndKeepAliveKeepAwake(t *testing.T) {
	m, _, _ := newManager(t)
	ctx := context.Background()
	for _, id := range []string{"held", "kept"} {
		if _, _, err := m.Create(ctx, id, api.CreateSandboxRequest{SleepAfter: "1s", KeepAlive: id == "kept"}); err != nil {
			t.Fatal(err)
		}
	}
	release := m.Hold("held")
	time.Sleep(2500 * time.Millisecond)
	for _, id := range []string{"held", "kept"} {
		if s := status(t, m, id); s != api.StatusRunning {
			t.Errorf("%s: %s, want running", id, s)
		}
	}
	release()
	release() // only the first counts
	released := time.Now()
	f := false
	if _, err := m.Update(ctx, "kept", api.UpdateSandboxRequest{KeepAlive: &f}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"held", "kept"} {
		if !eventually(10*time.Second, func() bool { return status(t, m, id) == api.StatusSleeping }) {
			t.Errorf("%s: %s 10s after its hold ended / keepAlive went off", id, status(t, m, id))
		}
	}
	if took := time.Since(released); took < time.Second {
		t.Errorf("slept %v after the hold ended, before its sleepAfter", took)
	}
}

// TestShorterSleepAfterApplies: a PATCH to a shorter sleepAfter takes effect
// on a sandbox already idle under the longer one.
func TestShorterSleepAfterApplies(t *testing.T) {
	m, _, _ := newManager(t)
	ctx := context.Background()
	if _, _, err := m.Create(ctx, "patched", api.CreateSandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	d := "1s"
	if _, err := m.Update(ctx, "patched", api.UpdateSandboxRequest{SleepAfter: &d}); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { return status(t, m, "patched") == api.StatusSleeping }) {
		t.Errorf("status %s after sleepAfter went from 10m to 1s", status(t, m, "patched"))
	}
}

// TestHoldCoversRecreatedID: a hold is on the ID, not on one life of its
// sandbox: one taken before a destroy still keeps awake the sandbox that a
// call then creates under the same ID (as a proxied call does: Hold, then
// Agent), and it sleeps once the hold ends.
func TestHoldCoversRecreatedID(t *testing.T) {
	m, _, _ := newManager(t)
	ctx := context.Background()
	if _, _, err := m.Create(ctx, "again", api.CreateSandboxRequest{SleepAfter: "1s"}); err != nil {
		t.Fatal(err)
	}
	release := m.Hold("again")
	if err := m.Destroy(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, "again", api.CreateSandboxRequest{SleepAfter: "1s"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if s := status(t, m, "again"); s != api.StatusRunning {
		t.Errorf("held across a destroy and create: %s, want running", s)
	}
	release()
	if !eventually(10*time.Second, func() bool { return status(t, m, "again") == api.StatusSleeping }) {
		t.Errorf("%s 10s after its hold ended", status(t, m, "again"))
	}
}

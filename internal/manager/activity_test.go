package manager

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// Activity reaches the store only through the saver, every
// activitySaveEvery, all sandboxes at once, and once more on Close; Get and
// List show it at once. (In a synctest bubble: its clock is fake, the
// store's file is real.)
func TestActivitySavedInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ids := []string{"a", "b", "c", "idle"}
		t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		m, st, _ := newActivityManager(t, t0, ids...)
		defer st.Close()
		defer m.Close()
		firstTick := time.Now().Add(activitySaveEvery)
		stored := func(id string) time.Time {
			t.Helper()
			rec, err := st.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return rec.LastActiveAt
		}
		shown := func(id string) time.Time {
			t.Helper()
			sb, err := m.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return sb.LastActiveAt
		}
		ms := func(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

		for _, id := range []string{"a", "b", "c"} {
			fakeRunning(t, m, id)
		}
		// Calls at t1 (to a and b, two to a) and a hold released at t1 (c).
		time.Sleep(time.Second)
		for _, id := range []string{"a", "a", "b"} {
			if _, err := m.Agent(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		m.Hold("c")()
		t1 := time.Now()
		for _, id := range ids {
			if got := stored(id); !got.Equal(t0) {
				t.Errorf("%s: stored lastActiveAt %v right after the calls: a call wrote it", id, got)
			}
		}
		for _, id := range []string{"a", "b", "c"} {
			if got := shown(id); !got.Equal(ms(t1)) {
				t.Errorf("%s: Get shows lastActiveAt %v, want the call's %v", id, got, ms(t1))
			}
		}
		list, err := m.List(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range list {
			want := ms(t1)
			if sb.ID == "idle" {
				want = t0
			}
			if !sb.LastActiveAt.Equal(want) {
				t.Errorf("%s: List shows lastActiveAt %v, want %v", sb.ID, sb.LastActiveAt, want)
			}
		}

		time.Sleep(time.Until(firstTick) - time.Millisecond)
		synctest.Wait()
		if got := stored("a"); !got.Equal(t0) {
			t.Errorf("stored before the saver's first tick: %v", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		for id, want := range map[string]time.Time{"a": ms(t1), "b": ms(t1), "c": ms(t1), "idle": t0} {
			if got := stored(id); !got.Equal(want) {
				t.Errorf("%s: stored lastActiveAt %v after one tick, want %v", id, got, want)
			}
		}
		m.mu.Lock()
		left := len(m.unsaved)
		m.mu.Unlock()
		if left != 0 {
			t.Errorf("%d sandboxes' activity still unsaved after a tick", left)
		}

		// Activity after the last tick is saved by Close; a destroyed
		// sandbox's is dropped.
		time.Sleep(time.Second)
		t2 := time.Now()
		m.noteActive(m.entry("b"), t2)
		m.noteActive(m.entry("idle"), t2)
		if err := m.Destroy(ctx, "idle"); err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		_, kept := m.unsaved["idle"]
		m.mu.Unlock()
		if kept {
			t.Error("a destroyed sandbox's activity is still to be saved")
		}
		m.Close()
		if got := stored("b"); !got.Equal(ms(t2)) {
			t.Errorf("stored lastActiveAt %v after Close, want %v", got, ms(t2))
		}
	})
}

// Calls that change nothing write nothing to the state file: activity,
// reads, and exposing a port again as it is. (The WAL grows with every
// commit.)
func TestCallsWriteNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		m, st, path := newActivityManager(t, time.Now().UTC().Truncate(time.Millisecond), "a")
		defer st.Close()
		defer m.Close()
		fakeRunning(t, m, "a")
		if _, err := m.ExposePort(ctx, "a", 8000, "web", ""); err != nil {
			t.Fatal(err)
		}
		wal := func() int64 {
			t.Helper()
			fi, err := os.Stat(path + "-wal")
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		time.Sleep(time.Second) // so that the calls are news to the record
		before := wal()
		calls := []struct {
			name string
			call func() error
		}{
			{"Agent", func() error { _, err := m.Agent(ctx, "a"); return err }},
			{"Hold", func() error { m.Hold("a")(); return nil }},
			{"Get", func() error { _, err := m.Get(ctx, "a"); return err }},
			{"List", func() error { _, err := m.List(ctx, nil); return err }},
			{"ExposePort again", func() error { _, err := m.ExposePort(ctx, "a", 8000, "", ""); return err }},
			{"ExposePort again, same name", func() error { _, err := m.ExposePort(ctx, "a", 8000, "web", ""); return err }},
			{"ExposedPorts", func() error { _, err := m.ExposedPorts(ctx, "a"); return err }},
			{"UnexposePort of no port", func() error { return m.UnexposePort(ctx, "a", 8001) }},
		}
		for _, c := range calls {
			if err := c.call(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if after := wal(); after != before {
				t.Errorf("%s wrote to the state file: its WAL went from %d to %d bytes", c.name, before, after)
				before = after
			}
		}
		time.Sleep(activitySaveEvery)
		synctest.Wait()
		if wal() == before {
			t.Error("the saver wrote nothing either: is the WAL measure broken?")
		}
	})
}

// Calls note activity while the saver writes (run with -race): every
// call's activity is in the store after a last save.
func TestActivityWhileSaving(t *testing.T) {
	ctx := context.Background()
	ids := []string{"a", "b", "c"}
	m, st, _ := newActivityManager(t, time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond), ids...)
	defer st.Close()
	defer m.Close()
	for _, id := range ids {
		fakeRunning(t, m, id)
	}
	stop := make(chan struct{})
	saved := make(chan error)
	go func() {
		for {
			select {
			case <-stop:
				saved <- m.saveActivity(ctx)
				return
			default:
				if err := m.saveActivity(ctx); err != nil {
					saved <- err
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for range 200 {
				if _, err := m.Agent(ctx, id); err != nil {
					t.Error(err)
					return
				}
				m.Hold(id)()
			}
		})
	}
	wg.Wait()
	last := time.Now()
	close(stop)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		rec, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.LastActiveAt.After(last) || last.Sub(rec.LastActiveAt) > time.Second {
			t.Errorf("%s: stored lastActiveAt %v, want its last call's, just before %v", id, rec.LastActiveAt, last)
		}
	}
}

// newActivityManager returns a Manager over a new state file at path with
// running records of ids, active at active, and its goroutines (the saver) started.
func newActivityManager(t *testing.T, active time.Time, ids ...string) (m *Manager, st *store.Store, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		rec := store.Sandbox{ID: id, Status: api.StatusRunning, Image: "default", CreatedAt: active, LastActiveAt: active,
			SleepAfter: DefaultSleepAfter, Network: api.NetworkNone, Cwd: "/workspace"}
		if _, err := st.Create(context.Background(), rec, 0); err != nil {
			st.Close()
			t.Fatal(err)
		}
	}
	m = New(Config{Store: st, Runtime: nopRuntime{}})
	m.startLoops()
	return m, st, path
}

// fakeRunning makes id's entry look running: an agent client that is
// never dialled, and this process as its container's init.
func fakeRunning(t *testing.T, m *Manager, id string) {
	e := m.lock(id)
	defer e.mu.Unlock()
	e.client = agentclient.New(filepath.Join(t.TempDir(), "none.sock"))
	e.inst = &runtime.Instance{ID: id, Pid: os.Getpid()}
}

// nopRuntime runs nothing: its containers are all stopped.
type nopRuntime struct{}

func (nopRuntime) Start(context.Context, runtime.Spec) (*runtime.Instance, error) {
	return nil, errors.New("nopRuntime: no starts")
}
func (nopRuntime) Attach(context.Context, string) (*runtime.Instance, error) {
	return nil, errdefs.ErrNotFound
}
func (nopRuntime) Stop(context.Context, string) error    { return nil }
func (nopRuntime) Destroy(context.Context, string) error { return nil }

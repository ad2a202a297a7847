package runtimetest

import (
	"context"
	"errors"
	"testing"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// testUsage checks runtime.UsageReader, for a backend that has it: CPU,
// memory and processes of a running sandbox, and the disk its quota file
// system has used (growing by what it writes; none without a quota); a
// stopped sandbox has no usage.
func testUsage(t *testing.T, env Env, newRuntime Factory) {
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	ur, ok := rt.(runtime.UsageReader)
	if !ok {
		t.Skip("no runtime.UsageReader")
	}
	const id = "rt-usage"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	inst, err := rt.Start(ctx, spec(id, env, 7))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	exec(t, inst, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
	before, err := ur.Usage(ctx, id)
	if err != nil {
		t.Fatalf("usage: %v", err)
	}
	if before.CPU <= 0 || before.MemoryBytes <= 0 || before.Pids < 1 {
		t.Errorf("usage = %+v, want CPU, memory and pids", before)
	}
	if env.Resources.DiskMB == 0 {
		if before.DiskBytes != 0 {
			t.Errorf("disk used without a quota: %d", before.DiskBytes)
		}
	} else {
		exec(t, inst, "dd if=/dev/zero of=/workspace/big bs=1M count=20 conv=fsync 2>/dev/null")
		after, err := ur.Usage(ctx, id)
		if err != nil {
			t.Fatalf("usage: %v", err)
		}
		if before.DiskBytes <= 0 || after.DiskBytes-before.DiskBytes < 20<<20 {
			t.Errorf("disk used %d, then %d after writing 20 MiB", before.DiskBytes, after.DiskBytes)
		}
		if after.CPU < before.CPU {
			t.Errorf("CPU time went back: %v, then %v", before.CPU, after.CPU)
		}
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if u, err := ur.Usage(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("usage of a stopped sandbox: %+v, %v; want ErrNotFound", u, err)
	}
}

package runtime

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A trace adds up each phase's wall time between marks, charges the
// container's CPU to the phase it is reported in, keeps the phases in the
// order they first ended, and a nil trace ignores everything.
func TestStartTrace(t *testing.T) {
	tr := NewStartTrace()
	ctx := WithStartTrace(context.Background(), tr)
	if TraceFrom(ctx) != tr || TraceFrom(context.Background()) != nil {
		t.Fatal("TraceFrom does not give back the trace")
	}
	time.Sleep(10 * time.Millisecond)
	tr.Mark("disk")
	tr.Mark("runtime")
	tr.ContainerCPU("runtime", 30*time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	tr.Mark("disk") // a second mark adds to the phase
	tr.ContainerCPU("agent", 50*time.Millisecond)
	tr.ContainerCPU("agent", 40*time.Millisecond) // a total below the last: nothing
	ph := tr.Phases()
	if len(ph) != 3 || ph[0].Name != "disk" || ph[1].Name != "runtime" || ph[2].Name != "agent" {
		t.Fatalf("phases %+v", ph)
	}
	if ph[0].Wall < 15*time.Millisecond {
		t.Errorf("disk's wall time %v, want both its stretches (15 ms and more)", ph[0].Wall)
	}
	if ph[1].CPU < 30*time.Millisecond || ph[2].CPU != 20*time.Millisecond {
		t.Errorf("container CPU: runtime %v (want 30 ms and more), agent %v (want 20 ms)", ph[1].CPU, ph[2].CPU)
	}
	if s := tr.String(); !strings.HasPrefix(s, "disk=") || !strings.Contains(s, " runtime=") || !strings.Contains(s, " agent=0.0/20.0") {
		t.Errorf("String() = %q", s)
	}
	var none *StartTrace
	none.Mark("x")
	none.ContainerCPU("x", time.Second)
	if none.Phases() != nil || none.String() != "" {
		t.Error("a nil trace records something")
	}
}

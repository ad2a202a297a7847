package runc

import (
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestTighten: no allow rule names a denied syscall any more, the rules
// left empty are gone, and everything else is as Docker's profile has it.
func TestTighten(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: defaultCaps}}}
	orig, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		t.Fatal(err)
	}
	sc = tighten(sc)
	allowed := func(sc *specs.LinuxSeccomp) map[string]bool {
		m := map[string]bool{}
		for _, r := range sc.Syscalls {
			if r.Action == specs.ActAllow && len(r.Args) == 0 {
				for _, n := range r.Names {
					m[n] = true
				}
			}
		}
		return m
	}
	before, after := allowed(orig), allowed(sc)
	for n := range before {
		if after[n] == deniedSyscalls[n] {
			t.Errorf("%s: allowed %v after tighten, denied %v", n, after[n], deniedSyscalls[n])
		}
	}
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && (len(r.Names) == 0 || slices.ContainsFunc(r.Names, func(n string) bool { return deniedSyscalls[n] })) {
			t.Errorf("allow rule %v after tighten", r.Names)
		}
	}
	if want, ok := nativeArch[goruntime.GOARCH]; ok && !slices.Equal(sc.Architectures, []specs.Arch{want}) {
		t.Errorf("architectures after tighten: %v, want only %s", sc.Architectures, want)
	}
	if len(sc.Syscalls) > len(orig.Syscalls) || sc.DefaultAction != orig.DefaultAction {
		t.Errorf("tighten: %d rules (from %d), default %s", len(sc.Syscalls), len(orig.Syscalls), sc.DefaultAction)
	}
}

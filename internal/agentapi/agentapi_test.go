package agentapi

import (
	"reflect"
	"testing"
)

func TestLimitsArgs(t *testing.T) {
	if got := (Limits{}).Args(); len(got) != 0 {
		t.Errorf("zero limits give flags %q", got)
	}
	got := Limits{Processes: 2, Contexts: 5}.Args()
	if want := []string{"--max-processes=2", "--max-contexts=5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if d := (Limits{Sessions: 1}).WithDefaults(); d.Sessions != 1 || d.Processes != DefaultMaxProcesses || d.Contexts != DefaultMaxContexts {
		t.Errorf("WithDefaults = %+v", d)
	}
	if err := (Limits{Sessions: -1}).Validate(); err == nil {
		t.Error("Validate accepts a negative limit")
	}
}

package api

import (
	"encoding/json"
	"maps"
	"testing"
)

// A null value in a request's env drops the variable; everything else is
// kept as given.
func TestEnvDropsNull(t *testing.T) {
	var req ExecRequest
	if err := json.Unmarshal([]byte(`{"command":"x","env":{"A":null,"B":"","C":"c"}}`), &req); err != nil {
		t.Fatal(err)
	}
	if want := (Env{"B": "", "C": "c"}); !maps.Equal(req.Env, want) {
		t.Errorf("env %v, want %v", req.Env, want)
	}
	req = ExecRequest{}
	if err := json.Unmarshal([]byte(`{"command":"x","env":null}`), &req); err != nil || req.Env != nil {
		t.Errorf("env null: %v, %v", req.Env, err)
	}
	if err := json.Unmarshal([]byte(`{"env":{"A":1}}`), &req); err == nil {
		t.Error("a number as a variable's value: no error")
	}
}

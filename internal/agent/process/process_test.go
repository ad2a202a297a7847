package process

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"SIGTERM": unix.SIGTERM, "TERM": unix.SIGTERM, "kill": unix.SIGKILL, "9": unix.SIGKILL, "2": unix.SIGINT} {
		if got, ok := parseSignal(in); !ok || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "NOPE", "0", "65", "-1"} {
		if _, ok := parseSignal(in); ok {
			t.Errorf("parseSignal(%q) accepted", in)
		}
	}
}

func TestParseStatusRange(t *testing.T) {
	for in, want := range map[string][2]int{"200": {200, 200}, "200-399": {200, 399}, " 204 - 204 ": {204, 204}} {
		if lo, hi, err := parseStatusRange(in); err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("parseStatusRange(%q) = %d, %d, %v; want %v", in, lo, hi, err, want)
		}
	}
	for _, in := range []string{"", "200-", "-200", "99", "600", "300-200", "abc"} {
		if _, _, err := parseStatusRange(in); err == nil {
			t.Errorf("parseStatusRange(%q) accepted", in)
		}
	}
}

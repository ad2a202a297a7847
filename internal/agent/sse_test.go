package agent

import "testing"

func TestIncompleteTail(t *testing.T) {
	euro := []byte("€") // e2 82 ac
	cases := []struct {
		in   []byte
		want int
	}{
		{[]byte("abc"), 0},
		{euro, 0},
		{euro[:1], 1},
		{euro[:2], 2},
		{append([]byte("x"), euro[:2]...), 2},
		{[]byte{0xff}, 0},             // invalid, not incomplete
		{[]byte{0x80, 0x80, 0x80}, 0}, // stray continuations
		{[]byte("é")[:1], 1},
		{[]byte("😀")[:3], 3},
		{nil, 0},
	}
	for _, c := range cases {
		if got := incompleteTail(c.in); got != c.want {
			t.Errorf("incompleteTail(% x) = %d, want %d", c.in, got, c.want)
		}
	}
}

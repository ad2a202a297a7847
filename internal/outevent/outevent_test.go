package outevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
)

// seeds are chunks of output that take each way through the codec.
var seeds = []string{"", "plain text\n", "a\x00b", "\xff\xfe", "quote \" back \\ slash / tab \t cr \r bs \b ff \f", "€😀",
	strings.Repeat("\x01", 100), strings.Repeat("\x00", 4000), "0123456789abcdef\n0123456789é\"abcdef\\",
	"0123456789abcdef0123456789\xffabcdef", "<html> & \u2028 \u2029", "\xe2\x82"}

// FuzzAppend: what Append makes is JSON that encoding/json reads as an
// output event of b, and Decode gives back exactly b.
func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		data := Append([]byte("prefix"), "stdout", b)
		data, ok := bytes.CutPrefix(data, []byte("prefix"))
		if !ok {
			t.Fatalf("Append lost the start of dst: %q", data)
		}
		var ev api.StreamEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			t.Fatalf("not JSON: %v: %q", err, data)
		}
		got, err := api.Output(ev.Data, ev.Encoding)
		if err != nil || !bytes.Equal(got, b) || ev.Type != "stdout" {
			t.Fatalf("encoding/json reads %q as %q %v, type %q", b, got, err, ev.Type)
		}
		got, ok = Decode(data, "stdout")
		if !ok || !bytes.Equal(got, b) {
			t.Fatalf("Decode(Append(%q)) = %q, %v", b, got, ok)
		}
	})
}

// FuzzDecode: Decode reads every output event encoding/json writes as
// encoding/json reads it, and declines, never misreads, anything else.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, asBase64 bool) {
		w := api.StreamEvent{Type: "stderr", Data: string(b)}
		if asBase64 {
			w.Data, w.Encoding = base64.StdEncoding.EncodeToString(b), api.EncodingBase64
		}
		raw, _ := json.Marshal(w)
		got, ok := Decode(raw, "stderr")
		want := b
		if !asBase64 {
			// What encoding/json itself makes of the string (U+FFFD
			// for bytes that are not UTF-8).
			var back api.StreamEvent
			_ = json.Unmarshal(raw, &back)
			want = []byte(back.Data)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("Decode(%q) = %q, want %q", raw, got, want)
		}
		if !ok && len(b) > 0 { // an empty chunk has no data field: encoding/json's job
			t.Fatalf("Decode declined %q", raw)
		}
		if _, ok := Decode(raw, "stdout"); ok {
			t.Fatalf("Decode took %q for a stdout event", raw)
		}

		// b itself as an event's data: whatever Decode takes,
		// encoding/json takes and reads the same.
		checkAgainstJSON(t, b)
		if asBase64 {
			checkAgainstJSON(t, append(append([]byte(`{"type":"stderr","data":"`), b...), `","encoding":"base64"}`...))
		} else {
			checkAgainstJSON(t, append(append([]byte(`{"type":"stderr","data":"`), b...), `"}`...))
		}
	})
}

// checkAgainstJSON fails if Decode takes data and encoding/json does not,
// or reads it otherwise.
func checkAgainstJSON(t *testing.T, data []byte) {
	t.Helper()
	got, ok := Decode(data, "stderr")
	if !ok {
		return
	}
	var ev api.StreamEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("Decode took %q, which encoding/json refuses: %v", data, err)
	}
	want, err := api.Output(ev.Data, ev.Encoding)
	if err != nil || ev.Type != "stderr" || !bytes.Equal(got, want) {
		t.Fatalf("Decode(%q) = %q; encoding/json reads %q, %v (type %q)", data, got, want, err, ev.Type)
	}
}

// FuzzUnquote: unquote agrees with encoding/json on every string
// encoding/json accepts, or declines it if it is not UTF-8 (which
// encoding/json mends); it never panics on anything else.
func FuzzUnquote(f *testing.F) {
	f.Add([]byte(`plain text, then escapes: \n \t \" \\ \/ \u00e9 \ud83d\ude00 \ud800 x`))
	f.Add([]byte(`0123456789abcdef\u0000\u001f`))
	f.Add([]byte(`0123456789abcdef0123456789\"abcdef\n0123456789abcdef\"`))
	f.Add([]byte("0123456789abcdef\\n01234567é9abcdef\\n0123456789\xff"))
	f.Add([]byte(`\ud83d\u`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := append(append([]byte{}, b...), '"')
		got, end, ok := unquote(in)
		var want string
		if err := json.Unmarshal(append([]byte{'"'}, in...), &want); err != nil {
			if ok && end == len(b) {
				t.Fatalf("unquote(%q) took what encoding/json refuses: %v", in, err)
			}
			return
		}
		if !ok && !utf8.Valid(b) {
			return
		}
		if !ok || end != len(b) || string(got) != want {
			t.Fatalf("unquote(%q) = %q, %d, %v; want %q, %d", in, got, end, ok, want, len(b))
		}
	})
}

// TestDecodeRefuses: shapes Decode leaves to encoding/json, whether it
// would take them or not.
func TestDecodeRefuses(t *testing.T) {
	for _, data := range []string{
		`{"type":"stdout"}`,
		`{"type":"stdout","data":"x","encoding":"base64"}`,
		`{"type":"stdout","data":"QUJD\nREVG","encoding":"base64"}`, // line ends, skipped by encoding/base64
		`{"type":"stdout","data":"QUJDREVG==","encoding":"base64"}`,
		`{"type":"stdout","data":"QU\u004aD","encoding":"base64"}`,
		`{"type":"stdout","data":"x","encoding":"gzip"}`,
		`{"type":"stdout","data":"x"} `,
		`{"type":"stdout", "data":"x"}`,
		`{"type":"stdout","data":"a` + "\t" + `b"}`,
		`{"type":"stdout","data":"` + "\xff" + `"}`,
		`{"type":"stdout","data":"\x"}`,
		`{"type":"stdout","data":"\u12"}`,
		`{"type":"stdout","data":"abc`,
		`{"type":"stdout","data":"abc\"}`,
	} {
		if got, ok := Decode([]byte(data), "stdout"); ok {
			t.Errorf("Decode(%q) = %q, want it declined", data, got)
		}
	}
}

// text is 720 KiB of output with a line end every 27 bytes (yes
// abcdefghijklmnopqrstuvwxyz), an output event's worth.
var text = bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 720<<10/27)

// BenchmarkAppendText: the agent's side of a text stream.
func BenchmarkAppendText(b *testing.B) { benchAppend(b, text) }

// BenchmarkAppendZero: the agent's side of a stream of NULs (base64).
func BenchmarkAppendZero(b *testing.B) { benchAppend(b, make([]byte, 1<<20)) }

func benchAppend(b *testing.B, chunk []byte) {
	var buf []byte
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		buf = Append(buf[:0], "stdout", chunk)
	}
}

// BenchmarkDecodeText: the SDK's side of a text stream.
func BenchmarkDecodeText(b *testing.B) { benchDecode(b, text) }

// BenchmarkDecodeZero: the SDK's side of a stream of NULs (base64).
func BenchmarkDecodeZero(b *testing.B) { benchDecode(b, make([]byte, 1<<20)) }

func benchDecode(b *testing.B, chunk []byte) {
	data := Append(nil, "stdout", chunk)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if out, ok := Decode(data, "stdout"); !ok || len(out) != len(chunk) {
			b.Fatal("declined")
		}
	}
}

// BenchmarkJSONDecodeText and BenchmarkJSONDecodeZero are
// BenchmarkDecodeText and BenchmarkDecodeZero through encoding/json, for
// comparison.
func BenchmarkJSONDecodeText(b *testing.B) { benchJSONDecode(b, text) }

func BenchmarkJSONDecodeZero(b *testing.B) { benchJSONDecode(b, make([]byte, 1<<20)) }

func benchJSONDecode(b *testing.B, chunk []byte) {
	data := Append(nil, "stdout", chunk)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		var ev api.StreamEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
		if out, err := api.Output(ev.Data, ev.Encoding); err != nil || len(out) != len(chunk) {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSONAppendText is BenchmarkAppendText through encoding/json,
// for comparison.
func BenchmarkJSONAppendText(b *testing.B) {
	var buf bytes.Buffer
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(api.StreamEvent{Type: "stdout", Data: string(text)}); err != nil {
			b.Fatal(err)
		}
	}
}

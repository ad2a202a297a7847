// Package outevent encodes and decodes the JSON data of output events, the
// stdout and stderr events that carry a command's output in exec and log
// streams (docs/API.md):
//
//	{"type":"stdout","data":"text\n"}
//	{"type":"stdout","data":"AAAA","encoding":"base64"}
//
// The agent encodes them (Append) and the SDK decodes them (Decode). They
// are the bulk of a stream, so both are written out by hand rather than
// through encoding/json, which handles them some ten times slower;
// anything Decode does not recognise it leaves to encoding/json. Fuzz
// tests pin both to encoding/json. The package depends on the standard
// library only, so that the static agent and the public SDK may both
// import it (internal/policy pins that).
package outevent

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"unicode/utf16"
	"unicode/utf8"
)

// Append appends to dst the JSON data of an output event of type typ
// ("stdout" or "stderr", which JSON carries as they are) carrying b: b as
// JSON text if it is UTF-8 that JSON carries cheaply, else b encoded in
// base64. Text full of control bytes (NUL above all, whose escapes take
// six bytes each) goes base64 as well: its 4/3 costs less. Decode, and
// encoding/json, give back exactly b.
func Append(dst []byte, typ string, b []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","data":"`...)
	mark := len(dst)
	if text, ok := appendText(dst, b); ok {
		return append(text, `"}`...)
	}
	dst = base64.StdEncoding.AppendEncode(dst[:mark], b)
	return append(dst, `","encoding":"base64"}`...)
}

// plain says which bytes a JSON string holds as they are: all but '"',
// '\\' and the control bytes below 0x20. (Bytes above 0x7F are plain too;
// appendText checks them to be UTF-8 beforehand.)
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// appendText appends the contents of a JSON string for b (without its
// quotes). It reports false, leaving b to base64, if b is not UTF-8 or
// once the escapes have added more than a third of len(b), or more than a
// third of the bytes read so far plus some slack: text dense with escapes
// is found out within a few KiB.
func appendText(dst, b []byte) ([]byte, bool) {
	const hex = "0123456789abcdef"
	const slack = 1 << 10
	if !utf8.Valid(b) {
		return dst, false
	}
	i, extra := 0, 0
	for {
		start := i
		for i < len(b) && plain[b[i]] {
			i++
		}
		dst = append(dst, b[start:i]...)
		if i == len(b) {
			return dst, true
		}
		switch c := b[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			extra += 4
		}
		i, extra = i+1, extra+1
		if extra > len(b)/3 || extra > i/3+slack {
			return dst, false
		}
	}
}

// Decode returns the bytes carried by data, the JSON data of an output
// event of type typ, if data has the shape Append gives it:
// {"type":typ,"data":S} or {"type":typ,"data":S,"encoding":"base64"},
// without spaces. The bytes are a new slice, never part of data. It
// reports false for anything else, and for what encoding/json would refuse
// or read otherwise (text that is not UTF-8, which it mends; base64 with
// line ends, which it refuses inside a string): the caller then decodes
// data with encoding/json, which reports or reads it.
func Decode(data []byte, typ string) ([]byte, bool) {
	body, ok := bytes.CutPrefix(data, []byte(`{"type":"`+typ+`","data":"`))
	if !ok {
		return nil, false
	}
	if b64, ok := bytes.CutSuffix(body, []byte(`","encoding":"base64"}`)); ok {
		// Base64 holds no '"' (decodeBase64 refuses one): this was the
		// string's end.
		return decodeBase64(b64)
	}
	text, end, ok := unquote(body)
	if !ok || string(body[end:]) != `"}` {
		return nil, false
	}
	return text, true
}

// decodeBase64 decodes standard, padded base64 into a new slice, refusing
// line ends, which encoding/base64 skips but JSON strings cannot hold. (A
// quote or a backslash, the start of any escape, it refuses as it is.)
func decodeBase64(src []byte) ([]byte, bool) {
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(dst, src)
	// Without skipped bytes, every four bytes give three, less one per
	// '=' of padding.
	pad := len(src) - len(bytes.TrimRight(src, "="))
	if err != nil || len(src)%4 != 0 || n != len(src)/4*3-pad {
		return nil, false
	}
	return dst[:n], true
}

// unquote decodes the contents of a JSON string at the start of s into a
// new slice and returns them with the index of the closing quote. It
// reports false for a control byte, a malformed escape, a string without
// its end, or one that is not UTF-8 (encoding/json mends those). Escaped
// UTF-16 surrogate pairs are joined and a lone surrogate gives U+FFFD, as
// in encoding/json.
func unquote(s []byte) ([]byte, int, bool) {
	out := make([]byte, 0, len(s))
	i := 0
	for {
		start := i
		for i < len(s) && plain[s[i]] {
			i++
		}
		out = append(out, s[start:i]...)
		if i == len(s) || s[i] != '\\' {
			break // the end, a control byte or the string cut short
		}
		if i+1 == len(s) {
			return nil, 0, false
		}
		switch c := s[i+1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				return nil, 0, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := hex4(s, i+2)
				if dec := utf16.DecodeRune(r, r2); ok && s[i] == '\\' && s[i+1] == 'u' && dec != utf8.RuneError {
					out = utf8.AppendRune(out, dec)
					i += 6
					continue
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, 0, false
		}
		i += 2
	}
	if i == len(s) || s[i] != '"' || !utf8.Valid(out) {
		return nil, 0, false
	}
	return out, i, true
}

// hex4 reads the four hex digits at s[i:].
func hex4(s []byte, i int) (rune, bool) {
	var b [2]byte
	if i+4 > len(s) {
		return 0, false
	}
	if _, err := hex.Decode(b[:], s[i:i+4]); err != nil {
		return 0, false
	}
	return rune(b[0])<<8 | rune(b[1]), true
}

package wireio

import (
	"encoding/binary"
	"math/bits"
)

// CopyPlain copies src to dst up to the first byte a JSON string cannot
// hold as it is (below 0x20, '"' or '\\') or, if high, the first byte
// above 0x7F, and returns how many bytes it copied. It may write dst past
// that point, up to len(src): dst must be at least as long as src.
//
// It is the hot loop of a text stream, on the agent's way out (escaping)
// and the SDK's way in (unescaping): output is mostly plain text with an
// escape every line or so. On amd64 it looks at 32 bytes a round with
// SSE2 (part of every amd64 CPU, so nothing is detected), storing them
// whole before it looks; elsewhere, and for the last few bytes, at eight
// with word arithmetic (SpecialBytes).
func CopyPlain(dst, src []byte, high bool) int {
	_ = dst[:len(src)]
	var hm uint32
	if high {
		hm = 0xFFFF
	}
	i := 0
	if haveBlocks && len(src) >= 16 {
		i = copyPlainBlocks(dst, src, hm)
		if i+16 <= len(src) {
			return i // stopped at a special byte
		}
	}
	var hw uint64
	if high {
		hw = Highs
	}
	for ; i+8 <= len(src); i += 8 {
		x := binary.LittleEndian.Uint64(src[i:])
		binary.LittleEndian.PutUint64(dst[i:], x)
		if t := SpecialBytes(x) | x&hw; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(src); i++ {
		c := src[i]
		if c < 0x20 || c == '"' || c == '\\' || high && c >= 0x80 {
			break
		}
		dst[i] = c
	}
	return i
}

// EscapeNewlines copies the start of src to dst as the contents of a JSON
// string, as CopyPlain does, except that it writes each '\n' as `\n` and
// goes on, up to limit of them: text with a line end every few dozen
// bytes costs no return to the caller per line. It returns how many bytes
// of src it read and of dst it wrote (m-n is the number of escapes). It
// stops at any other byte CopyPlain stops at, at limit, with fewer than 16
// bytes of src left, or when dst is short of room; elsewhere than on
// amd64 it does nothing. The caller carries on from there.
func EscapeNewlines(dst, src []byte, high bool, limit int) (n, m int) {
	if limit < 0 {
		limit = 0
	}
	return escapeNewlines(dst, src, highMask(high), limit)
}

// UnescapeNewlines is EscapeNewlines' inverse: it copies src, the
// contents of a JSON string, to dst, turning each `\n` into '\n', and
// stops at any other escape (or a '\\' that ends src) and where
// EscapeNewlines stops. dst and src must not overlap.
func UnescapeNewlines(dst, src []byte, high bool) (n, m int) {
	return unescapeNewlines(dst, src, highMask(high))
}

func highMask(high bool) uint32 {
	if high {
		return 0xFFFF
	}
	return 0
}

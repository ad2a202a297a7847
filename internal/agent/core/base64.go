package core

import (
	"slices"

	"github.com/segmentio/asm/base64"
)

// appendBase64 appends the standard, padded base64 encoding of src to dst,
// as base64.StdEncoding.AppendEncode from the standard library does.
// Binary output is sent base64-encoded, so this is the hot loop of such a
// stream: segmentio/asm's encoder (AVX2 where the CPU has it, the standard
// library's otherwise) runs at some 20 GB/s here, the standard library's
// at 1.
func appendBase64(dst, src []byte) []byte {
	n := base64.StdEncoding.EncodedLen(len(src))
	dst = slices.Grow(dst, n)
	base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], src)
	return dst[:len(dst)+n]
}

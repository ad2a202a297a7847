//go:build amd64 && gc && !purego

package wireio

// haveBlocks says copyPlainBlocks is the SSE2 loop.
const haveBlocks = true

// copyPlainBlocks is CopyPlain over the whole 16-byte blocks of src: it
// returns the index of the first special byte in them, or the end of the
// last whole block. high is 0xFFFF to stop at bytes above 0x7F, else 0.
// len(dst) >= len(src) is the caller's to check.
//
//go:noescape
func copyPlainBlocks(dst, src []byte, high uint32) int

// escapeNewlines and unescapeNewlines are EscapeNewlines and
// UnescapeNewlines on amd64; high is 0xFFFF or 0, as for copyPlainBlocks.
//
//go:noescape
func escapeNewlines(dst, src []byte, high uint32, limit int) (n, m int)

//go:noescape
func unescapeNewlines(dst, src []byte, high uint32) (n, m int)

//go:build !amd64 || !gc || purego

package wireio

// haveBlocks says copyPlainBlocks does nothing: CopyPlain's word loop
// does it all.
const haveBlocks = false

// copyPlainBlocks leaves all of src to CopyPlain's word loop.
func copyPlainBlocks(dst, src []byte, high uint32) int { return 0 }

func escapeNewlines(dst, src []byte, high uint32, limit int) (n, m int) { return 0, 0 }

func unescapeNewlines(dst, src []byte, high uint32) (n, m int) { return 0, 0 }

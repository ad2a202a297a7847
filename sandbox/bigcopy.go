package sandbox

import (
	"io"

	"github.com/sandboxd/sandboxd/internal/chunkio"
)

// copyChunk is how much a file transfer moves per write: big pieces mean
// few system calls and, for an upload, few chunks of the chunked encoding
// on every hop to the sandbox (net/http's own copies use 32 KiB).
const copyChunk = 1 << 20

// chunkedSource is the body of an upload of unknown size. Its WriteTo,
// which net/http's transport uses to send a chunked body, sends pieces of
// copyChunk, each as full as the reader allows, so that every chunk is
// big however the caller's reader returns its bytes.
type chunkedSource struct{ r io.Reader }

func (s chunkedSource) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s chunkedSource) WriteTo(w io.Writer) (int64, error) {
	return chunkio.CopyChunks(w, s.r, make([]byte, copyChunk))
}

// bigReadBody is a response body whose WriteTo, which io.Copy prefers,
// copies in pieces of copyChunk: a download read with io.Copy is then read
// from the connection and written out in big pieces, not in io.Copy's 32
// KiB (or io.Discard's 8 KiB).
type bigReadBody struct{ io.ReadCloser }

func (b bigReadBody) WriteTo(w io.Writer) (int64, error) {
	// Hide w's ReadFrom, so that the copy uses this buffer.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{b.ReadCloser}, make([]byte, copyChunk))
}

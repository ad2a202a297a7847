// Package chunkio copies streams in big pieces: Fill reads until a buffer
// is full, CopyChunks writes a stream out in pieces that full, however
// small the reads it gets. An upload goes through it on every hop (the
// SDK's request body, the daemon's proxy, the agent's writes to the file),
// so that each write is big whatever its reader returns. It depends on the
// standard library only, so that the static agent and the public SDK may
// both import it (internal/policy pins that).
package chunkio

import "io"

// Fill reads from r until buf is full or r fails (io.EOF included),
// returning how much it read and the error. Unlike io.ReadFull, it never
// turns an io.EOF into io.ErrUnexpectedEOF, so a reader's own
// io.ErrUnexpectedEOF is not taken for a short last piece. A reader that
// returns nothing 100 times in a row gives io.ErrNoProgress.
func Fill(r io.Reader, buf []byte) (int, error) {
	n, empty := 0, 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

// CopyChunks copies r to w in writes of len(buf), each as full as r
// allows (Fill), so that every piece sent is big however r returns its
// bytes. It returns the bytes written and the first error other than
// r's io.EOF.
func CopyChunks(w io.Writer, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		m, rerr := Fill(r, buf)
		if m > 0 {
			k, err := w.Write(buf[:m])
			n += int64(k)
			if err != nil {
				return n, err
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

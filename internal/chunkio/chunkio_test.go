package chunkio

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestFill(t *testing.T) {
	buf := make([]byte, 10)
	n, err := Fill(iotest.OneByteReader(bytes.NewReader([]byte("0123456789abc"))), buf)
	if n != 10 || err != nil || string(buf) != "0123456789" {
		t.Fatalf("full: %d %v %q", n, err, buf)
	}
	n, err = Fill(bytes.NewReader([]byte("abc")), buf)
	if n != 3 || err != io.EOF {
		t.Fatalf("short: %d %v; want 3, io.EOF", n, err)
	}
	n, err = Fill(iotest.ErrReader(io.ErrUnexpectedEOF), buf)
	if n != 0 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error: %d %v", n, err)
	}
	n, err = Fill(emptyReader{}, buf)
	if n != 0 || err != io.ErrNoProgress {
		t.Fatalf("no progress: %d %v", n, err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestCopyChunks(t *testing.T) {
	var w writes
	n, err := CopyChunks(&w, iotest.OneByteReader(bytes.NewReader([]byte("0123456789"))), make([]byte, 4))
	if n != 10 || err != nil || len(w) != 3 || string(w[0]) != "0123" || string(w[2]) != "89" {
		t.Fatalf("%d %v %q; want 10 bytes in pieces of 4, 4, 2", n, err, w)
	}
	if _, err := CopyChunks(&w, iotest.ErrReader(io.ErrUnexpectedEOF), make([]byte, 4)); err != io.ErrUnexpectedEOF {
		t.Fatalf("reader error: %v", err)
	}
}

// writes records each write.
type writes [][]byte

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, append([]byte(nil), p...))
	return len(p), nil
}

// Package wireio holds the byte-level pieces that both ends of a stream
// share: the agent and the daemon send output and files, the SDK receives
// them. It depends on the standard library only, so the static agent and
// the public SDK may both import it (internal/policy pins that).
package wireio

import (
	"encoding/binary"
	"io"
	"math/bits"
	"net/http"
	"strings"
)

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

// PlainRun returns how many bytes at the start of s a JSON string holds as
// they are: up to the first '"', '\\' or control byte. It looks at eight
// bytes at a time (output is mostly plain text: this is the hot loop of a
// text stream, on the agent's way out and the SDK's way in).
func PlainRun(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if t := SpecialBytes(binary.LittleEndian.Uint64(s[i:])); t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			break
		}
	}
	return i
}

// SpecialBytes flags, in the high bit of each byte, the bytes of the eight
// in x (little-endian) that are below 0x20, '"' or '\\'. A byte above a
// flagged one may be flagged wrongly (a borrow), so only the lowest flag
// is exact. Bytes above 0x7F are never flagged themselves.
//
// '"' is 0x22: x^0x02 maps it to 0x20 and the bytes below 0x20 onto
// themselves, so one test for "below 0x21" finds both.
func SpecialBytes(x uint64) uint64 {
	z := x ^ (Ones * 0x02)
	b := x ^ (Ones * '\\')
	return ((z-Ones*0x21) & ^z | (b-Ones) & ^b) & Highs
}

// EscapeBytes is SpecialBytes without '"': it flags the bytes below 0x20
// and '\\', the lowest flag exactly.
func EscapeBytes(x uint64) uint64 {
	b := x ^ (Ones * '\\')
	return ((x-Ones*0x20) & ^x | (b-Ones) & ^b) & Highs
}

// Every byte of a word: 0x01 (Ones), and its high bit (Highs).
const Ones, Highs = 0x0101010101010101, 0x8080808080808080

// IsWebSocketUpgrade reports whether h asks for a WebSocket handshake
// (Connection: upgrade and Upgrade: websocket, as tokens of any case in
// comma-separated lists).
func IsWebSocketUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

package core

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns n random lower-case hex digits (n even, at most 64), for
// the IDs the agent gives sessions, processes and contexts.
func NewID(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

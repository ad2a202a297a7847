package agent

import "net"

// connSendBuffer is the socket send buffer asked for each connection from
// the daemon (the kernel doubles it, and caps it at net.core.wmem_max).
// The default (~200 KiB) splits every output event of a busy stream into
// several writes, each a wait for the daemon to read; with room for a
// whole event (up to ~1.4 MiB) the agent writes it in one go, and the
// daemon reads it in big pieces. Memory is used only while the daemon
// lags behind.
const connSendBuffer = 2 << 20

// sendBuffered returns ln with the send buffer of every accepted Unix
// connection raised to connSendBuffer, as far as the system allows.
func sendBuffered(ln net.Listener) net.Listener { return sendBufferedListener{ln} }

type sendBufferedListener struct{ net.Listener }

func (l sendBufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if uc, ok := c.(*net.UnixConn); ok && err == nil {
		_ = uc.SetWriteBuffer(connSendBuffer) // best effort
	}
	return c, err
}

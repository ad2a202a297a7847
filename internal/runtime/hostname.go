package runtime

import "context"

// HostnameSetter is an optional capability of a Runtime: changing the
// hostname of a running container. The warm pool needs it, since its
// containers start before the ID that becomes their hostname is known; a
// Runtime without it gets no pool.
type HostnameSetter interface {
	// SetHostname makes hostname the hostname of running container id:
	// the kernel's (its UTS namespace) and the one in its /etc/hostname
	// and /etc/hosts, which are rewritten as Start writes them for a new
	// sandbox. Processes already running keep what they read before.
	// A container that is not running gives an error wrapping
	// errdefs.ErrNotFound.
	SetHostname(ctx context.Context, id, hostname string) error
}

package manager

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/netns"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/store"
)

// tokenAlphabet is the alphabet of preview tokens: [a-z0-9_].
const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789_"

// TokenLength is the length of a generated preview token: 16 letters of a
// 37-letter alphabet, about 83 bits.
const TokenLength = 16

// ValidToken reports whether tok is a well-formed preview token:
// 1-16 characters of [a-z0-9_]. (Checked on every preview request: no
// regexp.)
func ValidToken(tok string) bool {
	if len(tok) < 1 || len(tok) > 16 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// NewToken returns a random preview token (crypto/rand, uniform).
func NewToken() string {
	b := make([]byte, TokenLength)
	n := big.NewInt(int64(len(tokenAlphabet)))
	for i := range b {
		k, _ := rand.Int(rand.Reader, n) // never fails (it crashes the program instead)
		b[i] = tokenAlphabet[k.Int64()]
	}
	return string(b)
}

// ExposePort records port of sandbox id as exposed, creating and starting
// the sandbox first if needed (get-or-create), and returns the record. The
// preview URL it stands for works for the container now running; once the
// sandbox runs in another container (it restarted), it is stale until the
// port is exposed again. Exposing an exposed port again keeps its token
// (and its name, unless name is given); asking for a different token
// gives an error with code PORT_ALREADY_EXPOSED. token empty: a new
// random one. The caller has checked port and token.
func (m *Manager) ExposePort(ctx context.Context, id string, port int, name, token string) (store.Port, error) {
	if _, err := m.Agent(ctx, id); err != nil {
		return store.Port{}, err
	}
	e := m.lock(id)
	defer e.mu.Unlock()
	if e.inst == nil {
		return store.Port{}, fmt.Errorf("%w: sandbox %s stopped while its port was being exposed; try again", errdefs.ErrUnavailable, id)
	}
	p, err := m.cfg.Store.GetPort(ctx, id, port)
	was := p
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		p = store.Port{SandboxID: id, Port: port, Token: token, CreatedAt: time.Now().UTC()}
		if p.Token == "" {
			p.Token = NewToken()
		}
	case err != nil:
		return p, err
	case token != "" && token != p.Token:
		return p, &errdefs.CodedError{Code: api.CodePortAlreadyExposed, Kind: errdefs.ErrConflict,
			Message: fmt.Sprintf("port %d of sandbox %s is already exposed with another token; unexpose it first to change the token", port, id)}
	}
	if name != "" {
		p.Name = name
	}
	p.Instance = incarnation(e.inst)
	if err != nil || p != was { // exposed again as it is: nothing to write (and sync)
		if err := m.cfg.Store.PutPort(ctx, p); err != nil {
			delete(e.ports, port)
			return p, err
		}
	}
	e.cachePortLocked(p)
	return p, nil
}

// UnexposePort forgets port of sandbox id; its preview URL answers 404
// from then on. Unexposing a port that is not exposed is no error. A
// sandbox that does not exist is created (get-or-create); one that sleeps
// is not woken.
func (m *Manager) UnexposePort(ctx context.Context, id string, port int) error {
	if err := m.ensureExists(ctx, id); err != nil {
		return err
	}
	e := m.lock(id)
	defer e.mu.Unlock()
	delete(e.ports, port)
	return m.cfg.Store.DeletePort(ctx, id, port)
}

// ExposedPorts returns the exposed ports of sandbox id, by port number. A
// sandbox that does not exist is created (get-or-create); one that sleeps
// is not woken.
func (m *Manager) ExposedPorts(ctx context.Context, id string) ([]store.Port, error) {
	if err := m.ensureExists(ctx, id); err != nil {
		return nil, err
	}
	return m.cfg.Store.ListPorts(ctx, id)
}

// ensureExists creates id with defaults if it has no record.
func (m *Manager) ensureExists(ctx context.Context, id string) error {
	_, err := m.Get(ctx, id)
	if errors.Is(err, errdefs.ErrSandboxNotFound) {
		_, err = m.Agent(ctx, id)
	}
	return err
}

// PreviewTarget is what a preview request reaches: the exposed port's
// record and, if the port's container is the one running now, its agent.
type PreviewTarget struct {
	Port store.Port
	// Agent reaches the running container; nil when Stale.
	Agent *agentclient.Client
	// Stale is set when the sandbox is not running, or runs in another
	// container than the one the port was exposed in.
	Stale bool
}

// Preview looks up port of sandbox id for a preview request. It never
// creates, starts or wakes the sandbox. A port that is not exposed (or a
// sandbox that does not exist) gives an error with code PORT_NOT_EXPOSED.
//
// The answer for a running sandbox comes from memory after the first
// request (no store read, no /proc read): the entry caches the ports
// checked against its running container, and drops them with it.
func (m *Manager) Preview(ctx context.Context, id string, port int) (PreviewTarget, error) {
	m.mu.Lock()
	e := m.entries[id]
	m.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		if p, ok := e.ports[port]; ok { // only a running entry has ports
			m.directPortsLocked(e, p.Instance)
			return PreviewTarget{Port: p, Agent: e.client}, nil
		}
	}
	p, err := m.cfg.Store.GetPort(ctx, id, port)
	if errors.Is(err, errdefs.ErrNotFound) {
		return PreviewTarget{}, &errdefs.CodedError{Code: api.CodePortNotExposed, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("port %d of sandbox %s is not exposed", port, id)}
	}
	if err != nil {
		return PreviewTarget{}, err
	}
	if e == nil || e.gone || e.client == nil || incarnation(e.inst) != p.Instance {
		return PreviewTarget{Port: p, Stale: true}, nil
	}
	e.cachePortLocked(p)
	m.directPortsLocked(e, p.Instance)
	return PreviewTarget{Port: p, Agent: e.client}, nil
}

// cachePortLocked caches p, exposed in e's running container.
func (e *entry) cachePortLocked(p store.Port) {
	if e.ports == nil {
		e.ports = make(map[int]store.Port)
	}
	e.ports[p.Port] = p
}

// directPortsLocked gives e's agent client, once per container, a dialer
// that makes sockets in the container's network namespace itself
// (netns.Dialer), so preview traffic skips the agent's tunnel. The pid is
// pinned with a pidfd and then checked to still be the container's init
// of incarnation inc (its start time), so a reused pid cannot redirect
// it. If no dialer can be made, the agent's tunnels carry the traffic.
func (m *Manager) directPortsLocked(e *entry, inc string) {
	c, inst := e.client, e.inst
	if c.HasPortDialer() {
		return
	}
	d, err := netns.Open(inst.Pid, func() bool {
		now := incarnation(inst)
		return now == inc && strings.Contains(now, ":") // from /proc, not a guess
	})
	if err != nil {
		m.log.Warn("preview: reaching ports through the agent's tunnels", "sandbox", e.id, "err", err)
		c.NoPortDialer()
		return
	}
	c.SetPortDialer(d)
}

// incarnation names one life of a container: its init's host pid and that
// process's start time (from /proc, in clock ticks since boot), which stay
// the same when a restarted daemon re-attaches the container and change
// when the container is started again. (Instance.StartedAt is no such
// name: the runtime measures it differently on Start and on Attach.)
func incarnation(inst *runtime.Instance) string {
	if inst == nil {
		return ""
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(inst.Pid) + "/stat")
	if err == nil {
		// Fields after the command name, which is in parentheses and
		// may hold anything: state is field 3, starttime field 22.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
			f := bytes.Fields(stat[i+1:])
			if len(f) >= 20 {
				return strconv.Itoa(inst.Pid) + ":" + string(f[19])
			}
		}
	}
	return strconv.Itoa(inst.Pid) + "@" + strconv.FormatInt(inst.StartedAt.UnixNano(), 10)
}

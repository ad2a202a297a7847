package manager

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
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

// NewToken returns a random preview token (crypto/rand, no modulo bias).
func NewToken() string {
	b := make([]byte, TokenLength)
	for i := range b {
		b[i] = tokenAlphabet[randIndex(len(tokenAlphabet))]
	}
	return string(b)
}

// randIndex returns a uniform random number in [0, n), n < 256.
func randIndex(n int) int {
	limit := 256 - 256%n // reject bytes past the last whole multiple of n
	var one [1]byte
	for {
		_, _ = rand.Read(one[:]) // never fails (it crashes the program instead)
		if int(one[0]) < limit {
			return int(one[0]) % n
		}
	}
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
	if err == nil && p == was {
		// Exposed again as it is: nothing to write (and to sync).
		m.ports.put(p, e.inst)
		return p, nil
	}
	if err := m.cfg.Store.PutPort(ctx, p); err != nil {
		m.ports.drop(id, port)
		return p, err
	}
	m.ports.put(p, e.inst)
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
	m.ports.drop(id, port)
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
// request (no store read, no /proc read): the cache holds a port with the
// container it was exposed in, and counts only while that container runs.
func (m *Manager) Preview(ctx context.Context, id string, port int) (PreviewTarget, error) {
	m.mu.Lock()
	e := m.entries[id]
	m.mu.Unlock()
	if e == nil {
		return m.previewStopped(ctx, id, port)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone || e.client == nil || e.inst == nil {
		return m.previewStopped(ctx, id, port)
	}
	if cp, ok := m.ports.get(id, port); ok && cp.inst == e.inst {
		m.directPortsLocked(e, cp.port.Instance)
		return PreviewTarget{Port: cp.port, Agent: e.client}, nil
	}
	p, err := m.previewRecord(ctx, id, port)
	if err != nil {
		return PreviewTarget{}, err
	}
	if incarnation(e.inst) != p.Instance {
		return PreviewTarget{Port: p, Stale: true}, nil
	}
	m.ports.put(p, e.inst)
	m.directPortsLocked(e, p.Instance)
	return PreviewTarget{Port: p, Agent: e.client}, nil
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

// previewStopped answers Preview for a sandbox that does not run: stale if
// the port is exposed, else not exposed.
func (m *Manager) previewStopped(ctx context.Context, id string, port int) (PreviewTarget, error) {
	p, err := m.previewRecord(ctx, id, port)
	if err != nil {
		return PreviewTarget{}, err
	}
	return PreviewTarget{Port: p, Stale: true}, nil
}

func (m *Manager) previewRecord(ctx context.Context, id string, port int) (store.Port, error) {
	p, err := m.cfg.Store.GetPort(ctx, id, port)
	if errors.Is(err, errdefs.ErrNotFound) {
		m.ports.drop(id, port)
		return p, &errdefs.CodedError{Code: api.CodePortNotExposed, Kind: errdefs.ErrNotFound,
			Message: fmt.Sprintf("port %d of sandbox %s is not exposed", port, id)}
	}
	return p, err
}

// portCache keeps exposed ports of running sandboxes with the container
// each was exposed in. Writers hold the sandbox's entry lock (expose,
// unexpose, Preview's fill), so a fill never brings back a port that an
// unexpose removed; an entry whose container is no longer the running one
// counts for nothing (a destroy or restart needs no invalidation).
type portCache struct {
	mu sync.Mutex
	m  map[portKey]cachedPort
}

type portKey struct {
	id   string
	port int
}

type cachedPort struct {
	port store.Port
	inst *runtime.Instance
}

func (c *portCache) get(id string, port int) (cachedPort, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.m[portKey{id, port}]
	return cp, ok
}

func (c *portCache) put(p store.Port, inst *runtime.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[portKey]cachedPort)
	}
	c.m[portKey{p.SandboxID, p.Port}] = cachedPort{p, inst}
}

func (c *portCache) drop(id string, port int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, portKey{id, port})
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

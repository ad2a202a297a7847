package core

import (
	"context"
	"sync"
)

// Queue is a lock granted in arrival order, whose waiters may give up.
// It serializes the calls of one session.
type Queue struct {
	mu      sync.Mutex
	busy    bool
	waiters []chan struct{} // guarded by mu
}

// Lock waits for the Queue. It returns ctx's error if ctx ends first, in
// which case the caller does not hold the lock.
func (q *Queue) Lock(ctx context.Context) error {
	q.mu.Lock()
	if !q.busy {
		q.busy = true
		q.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	q.waiters = append(q.waiters, ch)
	q.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		for i, w := range q.waiters {
			if w == ch {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				q.mu.Unlock()
				return ctx.Err()
			}
		}
		q.mu.Unlock()
		// The lock was handed to us as ctx ended: pass it on.
		q.Unlock()
		return ctx.Err()
	}
}

// Unlock hands the lock to the longest waiter, if any.
func (q *Queue) Unlock() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) == 0 {
		q.busy = false
		return
	}
	next := q.waiters[0]
	q.waiters = q.waiters[1:]
	close(next)
}

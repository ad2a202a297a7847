package core

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
)

// TestQueueOrderAndCancel: waiters get the queue in arrival order; one
// whose context ends gives up its place; the queue is free after all.
// (synctest.Wait orders the arrivals: each waiter is blocked in Lock
// before the next comes.)
func TestQueueOrderAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var q Queue
		if err := q.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		var (
			mu    sync.Mutex
			order []int
			wg    sync.WaitGroup
		)
		cancelled, cancel := context.WithCancel(context.Background())
		for i := range 5 {
			ctx := context.Background()
			if i == 2 {
				ctx = cancelled
			}
			wg.Go(func() {
				if err := q.Lock(ctx); err != nil {
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				q.Unlock()
			})
			synctest.Wait() // it waits in Lock now
		}
		cancel()
		synctest.Wait()
		q.Unlock()
		wg.Wait()
		if len(order) != 4 || order[0] != 0 || order[1] != 1 || order[2] != 3 || order[3] != 4 {
			t.Errorf("order %v, want [0 1 3 4]", order)
		}
		if err := q.Lock(context.Background()); err != nil { // free again
			t.Fatal(err)
		}
	})
}

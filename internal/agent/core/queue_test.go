package core

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestQueueOrderAndCancel(t *testing.T) {
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
	for i := 0; i < 5; i++ {
		ctx := context.Background()
		if i == 2 {
			ctx = cancelled
		}
		wg.Add(1)
		go func(i int, ctx context.Context) {
			defer wg.Done()
			if err := q.Lock(ctx); err != nil {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			q.Unlock()
		}(i, ctx)
		time.Sleep(10 * time.Millisecond) // arrive in order
	}
	cancel()
	time.Sleep(10 * time.Millisecond)
	q.Unlock()
	wg.Wait()
	if len(order) != 4 || order[0] != 0 || order[1] != 1 || order[2] != 3 || order[3] != 4 {
		t.Errorf("order %v, want [0 1 3 4]", order)
	}
	if err := q.Lock(context.Background()); err != nil { // free again
		t.Fatal(err)
	}
}

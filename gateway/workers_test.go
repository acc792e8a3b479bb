package gateway

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// The pool never limits concurrency, reuses idle workers, and close leaves no goroutine behind.
func TestWorkerPool(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newWorkerPool()

	// 50 jobs that only finish together: each must have a worker of its own.
	const n = 50
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	var all sync.WaitGroup
	for i := 0; i < n; i++ {
		all.Add(1)
		go func() {
			defer all.Done()
			p.run(func() { started.Done(); <-release })
		}()
	}
	started.Wait()
	close(release)
	all.Wait()

	// Sequential jobs reuse the idle workers instead of starting more.
	workers := runtime.NumGoroutine()
	for i := 0; i < 1000; i++ {
		p.run(func() {})
	}
	if now := runtime.NumGoroutine(); now > workers {
		t.Fatalf("%d goroutines after 1,000 sequential jobs, %d before: workers were not reused", now, workers)
	}

	p.close()
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if now := runtime.NumGoroutine(); now > before {
		t.Fatalf("%d goroutines after close, %d before", now, before)
	}
	ran := false
	p.run(func() { ran = true }) // after close: on a goroutine of its own
	if !ran {
		t.Fatal("job after close did not run")
	}
}

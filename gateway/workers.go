package gateway

import (
	"sync"
	"time"
)

// workerPool runs SIP request handlers, and the loops sending generated MESSAGEs, on long-lived goroutines. sipgo starts a goroutine for every request;
// a new goroutine's stack is small, and the gateway's handler path is deep enough that every request grew
// it two or three times, copying it each time: about 11 % of the gateway's CPU at 5,000 MESSAGEs/s
// (runtime.newstack in the profile, docs/PERFORMANCE.md). A worker's stack has grown once and stays grown.
// sipgo's goroutine waits for the worker (the transaction must outlive the handler), which costs two cheap
// goroutine switches instead.
//
// There is no fixed number of workers: a job that finds none idle starts one, so the pool never limits
// concurrency (limits.max_sip_handlers does); a worker idle for workerIdle ends: long enough to outlast a
// pause in steady traffic, short enough that a burst's workers are soon gone.
type workerPool struct {
	jobs   chan func()
	stop   chan struct{}
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

const workerIdle = 2 * time.Second

func newWorkerPool() *workerPool {
	return &workerPool{jobs: make(chan func()), stop: make(chan struct{})}
}

// run runs f on a worker and returns when it has returned.
func (p *workerPool) run(f func()) {
	done := make(chan struct{})
	p.start(func() { f(); close(done) })
	<-done
}

// start runs f on a worker without waiting for it.
func (p *workerPool) start(f func()) {
	select {
	case p.jobs <- f:
		return
	default:
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		go f()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.worker(f)
}

func (p *workerPool) worker(job func()) {
	defer p.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-p.jobs:
		case <-idle.C:
			return
		case <-p.stop:
			return
		}
	}
}

// close ends the idle workers and waits for the busy ones; a job started later gets a goroutine of its own.
func (p *workerPool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

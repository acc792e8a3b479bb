package gateway

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sequencer keeps MESSAGEs that reach sipgo's handlers (over TCP and TLS; UDP ones are taken in order
// before, udpintake.go) in the order the gateway received them. sipgo parses each message on the
// connection's reader goroutine, in arrival order, and then hands every request to a goroutine of its own, so
// two MESSAGEs of one session race to their session. The sequencer numbers MESSAGEs on the reader goroutine
// (a transport-layer hook) and lets each handler enter the section that routes and queues it only after every
// earlier MESSAGE has left it. The section is short (routing and an append), so this costs little parallelism.
//
// A number whose handler never runs (a malformed request, a retransmission sipgo absorbed) would stall the
// line; retransmissions are recognised by their Via branch, requests sipgo refuses are not numbered, and
// anything else is skipped after holeTimeout.
type sequencer struct {
	mu       sync.Mutex
	next     uint64                   // the number the next MESSAGE gets
	low      uint64                   // every number below low has left the ordered section
	left     map[uint64]bool          // numbers at or above low that have left
	waiters  map[uint64]chan struct{} // handlers waiting for low to reach their number
	tickets  map[*sip.Request]*ticket
	seed     maphash.Seed
	branches map[uint64]int64 // hashes of Via branches seen recently -> unix nanoseconds
	fifo     []branchSeen
	decided  []decision // tickets the hook made before their handler claimed them, oldest first
}

// decision is a ticket the hook made; if no handler claims it (sipgo answered the request itself), it is
// dropped after ticketWaitHook.
type decision struct {
	req *sip.Request
	t   *ticket
	at  int64
}

type ticket struct {
	n        uint64
	numbered bool
	ready    chan struct{} // closed once the hook decided (it may run after the handler started)
}

type branchSeen struct {
	branch uint64
	at     int64
}

const (
	holeTimeout    = time.Second      // how long a handler waits for an earlier number that never comes
	branchMemory   = 32 * time.Second // RFC 3261 Timer F: retransmissions stop by then
	ticketWaitHook = 5 * time.Second  // safety bound: the hook runs right after sipgo spawned the handler
)

func newSequencer() *sequencer {
	return &sequencer{
		left:     make(map[uint64]bool),
		waiters:  make(map[uint64]chan struct{}),
		tickets:  make(map[*sip.Request]*ticket),
		seed:     maphash.MakeSeed(),
		branches: make(map[uint64]int64),
	}
}

// arrived is the transport-layer hook: it runs on the reader goroutine, in arrival order, just after sipgo
// started the request's handler goroutine. It decides whether the MESSAGE gets a number and hands the
// decision to the handler through its ticket.
func (q *sequencer) arrived(msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok || req.Method != sip.MESSAGE {
		return
	}
	now := time.Now().UnixNano()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.forgetLocked(now)
	t := q.tickets[req]
	if t == nil {
		t = &ticket{ready: make(chan struct{})}
		q.tickets[req] = t
		q.decided = append(q.decided, decision{req, t, now})
	}
	if q.number(req, now) {
		t.n, t.numbered = q.next, true
		q.next++
	}
	// Unnumbered (sipgo refuses it, or it is a retransmission): a handler that runs goes unordered.
	close(t.ready)
}

// number decides whether a MESSAGE gets a number: not when sipgo refuses it before any handler runs (numbering
// it would leave a hole), nor when it is a retransmission (same Via branch).
func (q *sequencer) number(req *sip.Request, now int64) bool {
	via := req.Via()
	if via == nil || req.CSeq() == nil || req.CallID() == nil || req.From() == nil || req.To() == nil {
		return false
	}
	branch, _ := via.Params.Get("branch")
	if branch == "" {
		return true
	}
	// A hash keeps this memory small (32 s of traffic); a collision only leaves one MESSAGE unordered.
	h := maphash.String(q.seed, branch)
	if _, seen := q.branches[h]; seen {
		return false
	}
	q.branches[h] = now
	q.fifo = append(q.fifo, branchSeen{h, now})
	return true
}

func (q *sequencer) forgetLocked(now int64) {
	i := 0
	for ; i < len(q.fifo) && now-q.fifo[i].at > int64(branchMemory); i++ {
		delete(q.branches, q.fifo[i].branch)
	}
	q.fifo = q.fifo[i:] // no copy here: append moves the live part when it next grows the array
	// Handlers claim their tickets within microseconds, so the front is mostly claimed already.
	i = 0
	for ; i < len(q.decided); i++ {
		d := q.decided[i]
		if q.tickets[d.req] != d.t {
			continue // claimed
		}
		if now-d.at <= int64(ticketWaitHook) {
			break
		}
		delete(q.tickets, d.req) // never claimed: no handler ran for it
	}
	clear(q.decided[:i])
	q.decided = q.decided[i:]
}

// enter waits until every MESSAGE received before req has left the ordered section. The returned function
// leaves it; call it exactly once.
func (q *sequencer) enter(req *sip.Request) (leave func()) {
	q.mu.Lock()
	t := q.tickets[req]
	if t == nil {
		t = &ticket{ready: make(chan struct{})}
		q.tickets[req] = t
	}
	q.mu.Unlock()
	select {
	case <-t.ready: // the usual case: the hook ran before the handler got here
	default:
		timer := time.NewTimer(ticketWaitHook)
		select {
		case <-t.ready:
			timer.Stop()
		case <-timer.C:
		}
	}
	q.mu.Lock()
	delete(q.tickets, req)
	if !t.numbered {
		q.mu.Unlock()
		return func() {}
	}
	if t.n > q.low {
		ch := make(chan struct{})
		q.waiters[t.n] = ch
		q.mu.Unlock()
		hole := time.NewTimer(holeTimeout)
		select {
		case <-ch:
			hole.Stop()
		case <-hole.C:
			q.mu.Lock()
			delete(q.waiters, t.n)
			q.skipToLocked(t.n)
			q.mu.Unlock()
		}
	} else {
		q.mu.Unlock()
	}
	return func() { q.leave(t.n) }
}

func (q *sequencer) leave(n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n < q.low {
		return // skipped over as a hole already
	}
	q.left[n] = true
	for q.left[q.low] {
		delete(q.left, q.low)
		q.low++
	}
	q.wakeLocked()
}

// skipToLocked gives up on every number below n.
func (q *sequencer) skipToLocked(n uint64) {
	for k := range q.left {
		if k < n {
			delete(q.left, k)
		}
	}
	if n > q.low {
		q.low = n
	}
	for q.left[q.low] {
		delete(q.left, q.low)
		q.low++
	}
	q.wakeLocked()
}

func (q *sequencer) wakeLocked() {
	if ch, ok := q.waiters[q.low]; ok {
		delete(q.waiters, q.low)
		close(ch)
	}
}

// drop releases the number of a MESSAGE whose handler will not run (refused before it).
func (q *sequencer) drop(req *sip.Request) {
	if req.Method != sip.MESSAGE {
		return
	}
	q.mu.Lock()
	t := q.tickets[req]
	q.mu.Unlock()
	if t == nil {
		return
	}
	select {
	case <-t.ready:
	case <-time.After(ticketWaitHook):
	}
	q.mu.Lock()
	delete(q.tickets, req)
	numbered := t.numbered
	q.mu.Unlock()
	if numbered {
		q.leave(t.n)
	}
}

package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// recentRequests makes MESSAGE handling idempotent (SPEC §8): a request repeating a recent one's Call-ID,
// CSeq and From-tag within 32 s is answered as the first was and never produces a second SEND. It does the
// same for BYE (a retransmission of an answered BYE gets its 200 again, not 481 for the ended dialog) and for
// an INVITE starting a dialog (a repeat gets the first's final response, To-tag and SDP included, and never
// replaces or creates a session).
//
// It also does what a server transaction would do for a MESSAGE: a retransmission is answered from here
// with the same response (once the first is answered). MESSAGEs over UDP never get a sipgo transaction
// (udpintake.go); over TCP and TLS sipgo's transaction ends at once (its handler does nothing). Kept for Timer J
// (64·T1 = 32 s), a sipgo transaction would cost several KiB per MESSAGE (the whole parsed request, timers);
// an entry here is a key and the answer.
type recentRequests struct {
	mu      sync.Mutex
	entries map[string]*recentEntry
	order   []recentKey
}

// answer is a final response as the gateway gave it: enough to give it again to a repeat.
type answer struct {
	code    int
	reason  string
	warning string        // the Warning header's text, if any
	hdrs    []sip.Header  // further headers (Retry-After, Accept, …)
	res     *sip.Response // the whole response, for a repeat that gets it as it was (an INVITE's); read only
}

type recentEntry struct {
	a       answer         // code 0 until answered
	waiting []func(answer) // repeats that came before the answer
}

type recentKey struct {
	k  string
	at time.Time
}

const recentWindow = 32 * time.Second

func newRecentRequests() *recentRequests {
	return &recentRequests{entries: make(map[string]*recentEntry)}
}

// appendRequestKey appends req's key, Call-ID, From-tag, CSeq number and method, to b; it appends nothing
// when req has no CSeq. Built in a caller's buffer, a lookup costs no allocation (the map index converts it
// in place) and an insertion one.
func appendRequestKey(b []byte, req *sip.Request) []byte {
	cseq := req.CSeq()
	if cseq == nil {
		return b
	}
	b = append(b, callID(req)...)
	b = append(b, 0)
	b = append(b, fromTag(req)...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(cseq.SeqNo), 10)
	return append(b, cseq.MethodName...)
}

// begin registers req and returns false, or, when req repeats a recent request, returns true and calls
// repeat with that request's answer: at once, or when the first is answered. It never blocks.
func (r *recentRequests) begin(req *sip.Request, repeat func(answer)) bool {
	var buf [160]byte
	kb := appendRequestKey(buf[:0], req)
	if len(kb) == 0 {
		return false
	}
	now := time.Now()
	r.mu.Lock()
	r.expireLocked(now)
	e, dup := r.entries[string(kb)]
	switch {
	case !dup:
		k := string(kb)
		r.entries[k] = &recentEntry{}
		r.order = append(r.order, recentKey{k, now})
		r.mu.Unlock()
		return false
	case e.a.code == 0:
		e.waiting = append(e.waiting, repeat)
		r.mu.Unlock()
		return true
	}
	a := e.a
	r.mu.Unlock()
	repeat(a)
	return true
}

// seen reports whether req repeats a recent request, without registering it.
func (r *recentRequests) seen(req *sip.Request) bool {
	var buf [160]byte
	kb := appendRequestKey(buf[:0], req)
	if len(kb) == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(time.Now())
	_, ok := r.entries[string(kb)]
	return ok
}

// finish records the final response given to req and gives it to the repeats waiting for it.
func (r *recentRequests) finish(req *sip.Request, a answer) {
	var buf [160]byte
	kb := appendRequestKey(buf[:0], req)
	r.mu.Lock()
	e := r.entries[string(kb)]
	if e == nil || e.a.code != 0 {
		r.mu.Unlock()
		return
	}
	e.a = a
	waiting := e.waiting
	e.waiting = nil
	r.mu.Unlock()
	for _, f := range waiting {
		f(a)
	}
}

func (r *recentRequests) expireLocked(now time.Time) {
	i := 0
	for ; i < len(r.order) && now.Sub(r.order[i].at) > recentWindow; i++ {
		k := r.order[i].k
		if e := r.entries[k]; e != nil && e.a.code != 0 {
			delete(r.entries, k)
		} else if e != nil {
			break // still unanswered: keep it and everything after
		}
	}
	r.order = r.order[i:]
}

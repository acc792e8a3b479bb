package gateway

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// recentRequests makes MESSAGE handling idempotent (SPEC §8): a request repeating a recent one's Call-ID,
// CSeq and From-tag within 32 s is answered as the first was and never produces a second SEND.
//
// It also stands in for sipgo's server transaction once a MESSAGE is answered: over UDP that transaction
// would stay in memory for Timer J (64·T1 = 32 s) only to answer retransmissions, at several KiB each (the
// whole parsed request, timers). The gateway ends it as soon as the final response is out, and a
// retransmission arriving later is answered from here with the same response.
type recentRequests struct {
	mu      sync.Mutex
	entries map[string]*recentEntry
	order   []recentKey
}

// answer is a final response as the gateway gave it: enough to give it again to a repeat.
type answer struct {
	code    int
	reason  string
	warning string       // the Warning header's text, if any
	hdrs    []sip.Header // further headers (Retry-After, Accept, …)
}

type recentEntry struct {
	done chan struct{} // closed once a is set
	a    answer
}

type recentKey struct {
	k  string
	at time.Time
}

const recentWindow = 32 * time.Second

func newRecentRequests() *recentRequests {
	return &recentRequests{entries: make(map[string]*recentEntry)}
}

func requestKey(req *sip.Request) string {
	cseq := req.CSeq()
	if cseq == nil {
		return ""
	}
	return callID(req) + "\x00" + fromTag(req) + "\x00" + itoa(int(cseq.SeqNo))
}

// begin registers req. When it repeats a recent request it returns that request's answer (waiting for it
// if the first is still being handled) and dup = true; ok is false when the first got no answer in time.
func (r *recentRequests) begin(req *sip.Request) (a answer, dup, ok bool) {
	k := requestKey(req)
	if k == "" {
		return answer{}, false, false
	}
	now := time.Now()
	r.mu.Lock()
	r.expireLocked(now)
	e, dup := r.entries[k]
	if !dup {
		r.entries[k] = &recentEntry{done: make(chan struct{})}
		r.order = append(r.order, recentKey{k, now})
	}
	r.mu.Unlock()
	if !dup {
		return answer{}, false, false
	}
	t := time.NewTimer(recentWindow)
	defer t.Stop()
	select {
	case <-e.done:
		return e.a, true, true
	case <-t.C:
		return answer{}, true, false
	}
}

// finish records the final response given to req.
func (r *recentRequests) finish(req *sip.Request, a answer) {
	k := requestKey(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[k]
	if e == nil || e.a.code != 0 {
		return
	}
	e.a = a
	close(e.done)
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

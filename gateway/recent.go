package gateway

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// recentRequests makes MESSAGE handling idempotent (SPEC §8): a request repeating a recent one's Call-ID,
// CSeq and From-tag within 32 s is answered as the first was and never produces a second SEND.
// (Retransmissions with the same branch never get here: sipgo's transaction layer absorbs them.)
type recentRequests struct {
	mu      sync.Mutex
	entries map[string]*recentEntry
	order   []recentKey
}

type recentEntry struct {
	done   chan struct{}
	code   int
	reason string
	at     time.Time
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

// begin registers req. When it repeats a recent request it answers it like the first (waiting for that
// answer if needed) and returns true.
func (r *recentRequests) begin(req *sip.Request, tx sip.ServerTransaction) bool {
	k := requestKey(req)
	if k == "" {
		return false
	}
	now := time.Now()
	r.mu.Lock()
	r.expireLocked(now)
	e, dup := r.entries[k]
	if !dup {
		r.entries[k] = &recentEntry{done: make(chan struct{}), at: now}
		r.order = append(r.order, recentKey{k, now})
	}
	r.mu.Unlock()
	if !dup {
		return false
	}
	select {
	case <-e.done:
	case <-time.After(recentWindow):
		return true
	}
	res := sip.NewResponseFromRequest(req, e.code, e.reason, nil)
	tx.Respond(res)
	return true
}

// finish records the final response given to req.
func (r *recentRequests) finish(req *sip.Request, code int, reason string) {
	k := requestKey(req)
	r.mu.Lock()
	e := r.entries[k]
	r.mu.Unlock()
	if e == nil || e.code != 0 {
		return
	}
	e.code, e.reason = code, reason
	close(e.done)
}

func (r *recentRequests) expireLocked(now time.Time) {
	i := 0
	for ; i < len(r.order) && now.Sub(r.order[i].at) > recentWindow; i++ {
		k := r.order[i].k
		if e := r.entries[k]; e != nil && e.code != 0 {
			delete(r.entries, k)
		} else if e != nil {
			break // still unanswered: keep it and everything after
		}
	}
	r.order = r.order[i:]
}

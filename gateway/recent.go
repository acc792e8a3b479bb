package gateway

import (
	"encoding/binary"
	"hash/maphash"
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
// an entry here is a hash and a code.
//
// At 10,000 MESSAGEs a second the window holds 320,000 requests or more, so its shape is chosen for that.
// A request is known by a 128-bit hash of its key. A request not yet answered is in open; once answered it
// moves to the current generation, which becomes the previous one after recentWindow and is dropped whole
// after another: an answer is kept between one and two windows, and nothing is ever deleted from the large
// maps, where deleting one entry per request would leave the tombstones that make every later lookup probe
// further. The generations hold no pointers but for answers that are more than their code (a Warning,
// further headers, an INVITE's whole response), so the collector does not scan them, and a request answered
// 200 or 202 allocates nothing.
type recentRequests struct {
	mu        sync.Mutex
	open      map[recentKey]*recentEntry // registered, not answered yet; nil: no repeat waiting
	cur, prev recentGen
	seeds     [2]maphash.Seed
	base      time.Time        // times count from here, on the monotonic clock
	clock     func() time.Time // time.Now; a benchmark's own
}

// recentKey is a request's Call-ID, From-tag, CSeq number and method, hashed with two random seeds: two
// requests in the window share it with a probability of about n²/2¹²⁹, under 10⁻²⁷ for a million.
type recentKey [16]byte

// recentGen is the answers given during one window.
type recentGen struct {
	codes map[recentKey]uint16  // the answer's code, or richCode
	rich  map[recentKey]*answer // the answers that are more than a code
	start time.Duration         // since base
}

// richCode marks an answer kept whole in its generation's rich map.
const richCode = 1

// answer is a final response as the gateway gave it: enough to give it again to a repeat.
type answer struct {
	code    int
	reason  string
	warning string        // the Warning header's text, if any
	hdrs    []sip.Header  // further headers (Retry-After, Accept, …)
	res     *sip.Response // the whole response, for a repeat that gets it as it was (an INVITE's); read only
}

// compact reports whether a is its code alone, with the reason phrase plainCode gives back.
func (a answer) compact() bool {
	return a.warning == "" && a.hdrs == nil && a.res == nil && a.reason == plainReason(a.code) && a.reason != ""
}

// plainReason is the reason phrase of an answer kept as its code alone: the gateway's usual ones.
func plainReason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	}
	return ""
}

type recentEntry struct {
	waiting []func(answer) // repeats that came before the answer
}

const recentWindow = 32 * time.Second

func newRecentRequests() *recentRequests {
	return &recentRequests{
		open:  make(map[recentKey]*recentEntry),
		cur:   newRecentGen(0),
		prev:  newRecentGen(0),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		base:  time.Now(),
		clock: time.Now,
	}
}

func newRecentGen(start time.Duration) recentGen {
	return recentGen{codes: make(map[recentKey]uint16), rich: make(map[recentKey]*answer), start: start}
}

// key hashes req's Call-ID, From-tag, CSeq number and method; ok is false when req has no CSeq.
func (r *recentRequests) key(req *sip.Request) (k recentKey, ok bool) {
	cseq := req.CSeq()
	if cseq == nil {
		return k, false
	}
	return r.keyAs(req, cseq.MethodName)
}

// keyAs is key with method in place of req's own: the key of the request a CANCEL names.
func (r *recentRequests) keyAs(req *sip.Request, method sip.RequestMethod) (k recentKey, ok bool) {
	cseq := req.CSeq()
	if cseq == nil {
		return k, false
	}
	var buf [160]byte // the usual key fits: no allocation
	b := append(buf[:0], callID(req)...)
	b = append(b, 0)
	b = append(b, fromTag(req)...)
	b = append(b, 0)
	b = strconv.AppendUint(b, uint64(cseq.SeqNo), 10)
	b = append(b, method...)
	binary.LittleEndian.PutUint64(k[:8], maphash.Bytes(r.seeds[0], b))
	binary.LittleEndian.PutUint64(k[8:], maphash.Bytes(r.seeds[1], b))
	return k, true
}

// begin registers req and returns false, or, when req repeats a recent request, returns true and calls
// repeat with that request's answer: at once, or when the first is answered. It never blocks.
func (r *recentRequests) begin(req *sip.Request, repeat func(answer)) bool {
	k, ok := r.key(req)
	if !ok {
		return false
	}
	r.mu.Lock()
	if e, ok := r.open[k]; ok {
		if e == nil {
			e = &recentEntry{}
			r.open[k] = e
		}
		e.waiting = append(e.waiting, repeat)
		r.mu.Unlock()
		return true
	}
	r.rotateLocked()
	a, answered := r.answerLocked(k)
	if !answered {
		r.open[k] = nil
	}
	r.mu.Unlock()
	if answered {
		repeat(a)
	}
	return answered
}

// pendingAs reports whether a request like req but of method, the one a CANCEL names, is registered and not
// answered yet.
func (r *recentRequests) pendingAs(req *sip.Request, method sip.RequestMethod) bool {
	k, ok := r.keyAs(req, method)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, open := r.open[k]
	return open
}

// seen reports whether req repeats a recent request, without registering it.
func (r *recentRequests) seen(req *sip.Request) bool {
	k, ok := r.key(req)
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.open[k]; ok {
		return true
	}
	r.rotateLocked()
	_, ok = r.answerLocked(k)
	return ok
}

// finish records the final response given to req and gives it to the repeats waiting for it.
func (r *recentRequests) finish(req *sip.Request, a answer) {
	k, ok := r.key(req)
	if !ok {
		return
	}
	r.mu.Lock()
	e, ok := r.open[k]
	if !ok { // answered already, or never registered
		r.mu.Unlock()
		return
	}
	delete(r.open, k)
	r.rotateLocked()
	if a.compact() {
		r.cur.codes[k] = uint16(a.code)
	} else {
		kept := a
		r.cur.codes[k] = richCode
		r.cur.rich[k] = &kept
	}
	r.mu.Unlock()
	if e != nil {
		for _, f := range e.waiting {
			f(a)
		}
	}
}

// answerLocked is the answer kept for k, if any.
func (r *recentRequests) answerLocked(k recentKey) (answer, bool) {
	for _, g := range [...]*recentGen{&r.cur, &r.prev} {
		switch code, ok := g.codes[k]; {
		case !ok:
		case code == richCode:
			return *g.rich[k], true
		default:
			return answer{code: int(code), reason: plainReason(int(code))}, true
		}
	}
	return answer{}, false
}

// rotateLocked starts a new generation when the current one is a window old, dropping the previous one.
func (r *recentRequests) rotateLocked() {
	now := r.clock().Sub(r.base)
	if now-r.cur.start < recentWindow {
		return
	}
	if now-r.cur.start >= 2*recentWindow { // nothing answered for a window: both are old
		r.cur = newRecentGen(now)
	}
	r.prev, r.cur = r.cur, newRecentGen(now)
}

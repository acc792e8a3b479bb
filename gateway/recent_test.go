package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// recentReq is a MESSAGE with the parts of its identity recentRequests keys on.
func recentReq(callID, fromTag string, cseq uint32) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1"})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", fromTag)
	req.AppendHeader(from)
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.MESSAGE})
	return req
}

// fakeClock is a recentRequests' clock that moves only when told.
type fakeClock struct{ now time.Time }

func (c *fakeClock) time() time.Time         { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

func newTestRecent() (*recentRequests, *fakeClock) {
	r := newRecentRequests()
	c := &fakeClock{now: r.base}
	r.clock = c.time
	return r, c
}

// A repeat gets the first request's answer, whole: at once once answered, or when it is; requests differing
// in Call-ID, From-tag or CSeq are not repeats.
func TestRecentRequestsRepeats(t *testing.T) {
	r, _ := newTestRecent()
	first := recentReq("c1", "t1", 1)
	if r.begin(first, func(answer) { t.Error("a first request answered as a repeat") }) {
		t.Fatal("a first request taken for a repeat")
	}
	for _, other := range []*sip.Request{recentReq("c2", "t1", 1), recentReq("c1", "t2", 1), recentReq("c1", "t1", 2)} {
		if r.begin(other, func(answer) {}) {
			t.Fatalf("%s taken for a repeat of %s", other, first)
		}
	}
	var early []answer
	if !r.begin(recentReq("c1", "t1", 1), func(a answer) { early = append(early, a) }) || len(early) != 0 {
		t.Fatalf("a repeat before the answer: %v", early)
	}
	retry := sip.NewHeader("Retry-After", "5")
	given := answer{code: 503, reason: "Service Unavailable", warning: "draining", hdrs: []sip.Header{retry}}
	r.finish(first, given)
	r.finish(first, answer{code: 200, reason: "OK"}) // a second answer changes nothing
	var late []answer
	if !r.begin(recentReq("c1", "t1", 1), func(a answer) { late = append(late, a) }) {
		t.Fatal("a repeat after the answer not taken for one")
	}
	for _, got := range append(early, late...) {
		if got.code != 503 || got.reason != given.reason || got.warning != given.warning || len(got.hdrs) != 1 || got.hdrs[0] != retry {
			t.Errorf("repeat answered %+v, want %+v", got, given)
		}
	}
	if len(early) != 1 || len(late) != 1 {
		t.Errorf("%d waiting and %d later repeats answered, want 1 and 1", len(early), len(late))
	}
	for _, a := range []answer{{code: 200, reason: "OK"}, {code: 202, reason: "Accepted"}, {code: 200, reason: "Delivered"}} {
		req := recentReq("c-"+a.reason, "t", 1)
		r.begin(req, func(answer) {})
		r.finish(req, a)
		var got answer
		r.begin(recentReq("c-"+a.reason, "t", 1), func(x answer) { got = x })
		if got.code != a.code || got.reason != a.reason {
			t.Errorf("repeat answered %d %q, want %d %q", got.code, got.reason, a.code, a.reason)
		}
	}
}

// An answer is kept for 32 s at least (SPEC §8), wherever in a generation it falls, and forgotten after two
// windows; a request not answered yet is kept however long it takes.
func TestRecentRequestsWindow(t *testing.T) {
	const specWindow = 32 * time.Second // SPEC §8, a literal: recentWindow set lower must fail here
	for _, at := range []time.Duration{0, recentWindow / 2, recentWindow - time.Millisecond, recentWindow, 3*recentWindow + time.Second} {
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			r, c := newTestRecent()
			r.begin(recentReq("warm-up", "t", 1), func(answer) {}) // generations running since 0
			r.finish(recentReq("warm-up", "t", 1), answer{code: 200, reason: "OK"})
			c.advance(at)
			req := recentReq("c1", "t1", 1)
			r.begin(req, func(answer) {})
			r.finish(req, answer{code: 200, reason: "OK"})
			c.advance(specWindow - time.Millisecond)
			if !r.seen(recentReq("c1", "t1", 1)) {
				t.Fatalf("answer forgotten within %v", specWindow)
			}
			c.advance(2*recentWindow - specWindow + 2*time.Millisecond)
			if r.seen(recentReq("c1", "t1", 1)) {
				t.Fatalf("answer kept past two windows")
			}
			if r.begin(recentReq("c1", "t1", 1), func(answer) {}) {
				t.Fatal("a forgotten request taken for a repeat")
			}
		})
	}
}

// A request not answered yet is kept however long it takes, and its answer a window after that.
func TestRecentRequestsUnanswered(t *testing.T) {
	r, c := newTestRecent()
	req := recentReq("c1", "t1", 1)
	r.begin(req, func(answer) {})
	for range 10 {
		c.advance(recentWindow)
		r.begin(recentReq("other", "t1", 1), func(answer) {}) // generations go on
	}
	var got []answer
	if !r.begin(recentReq("c1", "t1", 1), func(a answer) { got = append(got, a) }) {
		t.Fatal("an unanswered request forgotten")
	}
	r.finish(req, answer{code: 202, reason: "Accepted"})
	c.advance(recentWindow - time.Millisecond)
	if !r.seen(recentReq("c1", "t1", 1)) || len(got) != 1 || got[0].code != 202 {
		t.Fatalf("answer to a long unanswered request: kept %v, repeat got %+v", r.seen(recentReq("c1", "t1", 1)), got)
	}
}

// seen registers nothing.
func TestRecentRequestsSeen(t *testing.T) {
	r, _ := newTestRecent()
	for range 2 {
		if r.seen(recentReq("c1", "t1", 1)) {
			t.Fatal("seen before any begin")
		}
	}
	if r.begin(recentReq("c1", "t1", 1), func(answer) {}) {
		t.Fatal("seen registered the request")
	}
}

// BenchmarkRecentRequests is the idempotency window at steady state: MESSAGEs at 10,000/s on a clock that
// advances 100 µs per message, so the window holds 320,000 to 640,000 answered requests; each message is
// registered and answered.
func BenchmarkRecentRequests(b *testing.B) {
	const rate = 10000
	const live = int(recentWindow/time.Second) * rate
	r, c := newTestRecent()
	ids := make([]string, 3*live) // made beforehand; reused once forgotten
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-7dec-11d0-a765-00a0c91e6bf6", i)
	}
	reqs := make([]*sip.Request, 64)
	for i := range reqs {
		reqs[i] = recentReq("", "a73kszlfl", 1)
	}
	ok := answer{code: 200, reason: "OK"}
	tick := 0
	step := func() {
		req := reqs[tick%len(reqs)]
		*req.CallID() = sip.CallIDHeader(ids[tick%len(ids)])
		if r.begin(req, func(answer) {}) {
			b.Fatal("a new request taken for a repeat")
		}
		r.finish(req, ok)
		tick++
		c.advance(time.Second / rate)
	}
	for range 2*live + rate {
		step()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		step()
	}
}

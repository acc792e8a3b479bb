package gateway

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
)

// This file tests the session and queue bounds of limits.go (SPEC §8) with small bounds: over a bound that
// one session or message is refused (503 with Retry-After, a Warning naming the bound, a RequestRefused
// event); everything else keeps working, and the bound frees up when sessions end or messages finish.

// want503 checks a refusal by a bound: 503, Retry-After from limits.retry_after, a Warning naming the key.
func want503(t *testing.T, res *sip.Response, key string) {
	t.Helper()
	if res.StatusCode != 503 {
		t.Fatalf("got %d %s, want 503 (%s)", res.StatusCode, res.Reason, key)
	}
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "3" {
		t.Fatalf("Retry-After %v, want 3", ra)
	}
	if w := res.GetHeader("Warning"); w == nil || !strings.Contains(w.Value(), "limits."+key) {
		t.Fatalf("Warning %v does not name limits.%s", w, key)
	}
}

// refusedEvent waits for the RequestRefused event of a bound.
func refusedEvent(t *testing.T, h *harness, key string) {
	t.Helper()
	e := h.events.waitKind(t, event.RequestRefused)
	if e.Code != 503 || !strings.Contains(e.Reason, "limits."+key) {
		t.Fatalf("RequestRefused %d %q, want 503 naming limits.%s", e.Code, e.Reason, key)
	}
}

// inviteOffer is an SDP offer of c with a fresh MSRP session (a=setup active: c connects).
func inviteOffer(c *testpeer.Client) []byte {
	return c.Media(c.NewSession(), "active").Marshal(1, 1)
}

func TestMaxSessions(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxSessions = 2
		c.Limits.RetryAfter = 3 * time.Second
	})
	alice := testpeer.NewPhone(t, "ms-alice")
	bobs := []*testpeer.Client{testpeer.NewClient(t, "ms-bob0"), testpeer.NewClient(t, "ms-bob1"), testpeer.NewClient(t, "ms-bob2")}

	var sessions []*testpeer.ClientSession
	for i := 0; i < 2; i++ {
		if res := alice.Send(h.udp(), bobs[i].URI, "text/plain", "hi"); res.StatusCode != 202 {
			t.Fatalf("session %d: %d %s", i, res.StatusCode, res.Reason)
		}
		cs := bobs[i].WaitInvite()
		if m := cs.Recv(); string(m.Body) != "hi" {
			t.Fatalf("got %q", m.Body)
		}
		sessions = append(sessions, cs)
	}

	// A third session, MESSAGE first: 503.
	want503(t, alice.Send(h.udp(), bobs[2].URI, "text/plain", "third"), "max_sessions")
	refusedEvent(t, h, "max_sessions")
	// A third session, INVITE first: 503.
	carol := testpeer.NewPhone(t, "ms-carol")
	res := invitePeer(t, bobs[2], h.udp(), carol.URI, "application/sdp", inviteOffer(bobs[2]))
	want503(t, res, "max_sessions")
	refusedEvent(t, h, "max_sessions")
	select {
	case <-bobs[2].Invites():
		t.Fatal("a refused MESSAGE set up a session")
	default:
	}

	// The live sessions are unaffected, both ways.
	for i, cs := range sessions {
		body := fmt.Sprintf("still %d", i)
		if res := alice.Send(h.udp(), bobs[i].URI, "text/plain", body); res.StatusCode != 202 {
			t.Fatalf("live session %d: %d", i, res.StatusCode)
		}
		if m := cs.Recv(); string(m.Body) != body {
			t.Fatalf("live session %d got %q", i, m.Body)
		}
		if r := cs.Send("text/plain", "back"); r.StatusCode != 200 {
			t.Fatalf("live session %d SEND: %+v", i, r)
		}
		if m := alice.Recv(); string(m.Body()) != "back" {
			t.Fatalf("alice got %q", m.Body())
		}
	}

	// A session that ends frees its place.
	sessions[0].Bye()
	h.events.waitKind(t, event.SessionEnded)
	if res := alice.Send(h.udp(), bobs[2].URI, "text/plain", "now"); res.StatusCode != 202 {
		t.Fatalf("after a session ended: %d %s", res.StatusCode, res.Reason)
	}
	if m := bobs[2].WaitInvite().Recv(); string(m.Body) != "now" {
		t.Fatalf("got %q", m.Body)
	}
	waitQueuedZero(t, h)
}

// waitQueuedZero waits until no message is counted as queued (202 answers come before the SEND's answer).
func waitQueuedZero(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for h.gw.limits.queued.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still counted as queued", h.gw.limits.queued.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxSessionsPerSource(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxSessionsPerSource = 1
		c.Limits.RetryAfter = 3 * time.Second
	})
	chat := startSideChat(t, h) // one session from 127.0.0.1
	two := testpeer.NewPhoneWith(t, "src-two", testpeer.PhoneConfig{Host: "127.0.0.2"})
	three := testpeer.NewPhoneWith(t, "src-three", testpeer.PhoneConfig{Host: "127.0.0.3"})
	bobA, bobB, bobC := testpeer.NewClient(t, "src-bobA"), testpeer.NewClient(t, "src-bobB"), testpeer.NewClient(t, "src-bobC")

	if res := two.Send(h.udp(), bobA.URI, "text/plain", "from two"); res.StatusCode != 202 {
		t.Fatalf("first session from 127.0.0.2: %d %s", res.StatusCode, res.Reason)
	}
	csA := bobA.WaitInvite()
	if m := csA.Recv(); string(m.Body) != "from two" {
		t.Fatalf("got %q", m.Body)
	}
	// A second session from 127.0.0.2: refused.
	want503(t, two.Send(h.udp(), bobB.URI, "text/plain", "second from two"), "max_sessions_per_source")
	refusedEvent(t, h, "max_sessions_per_source")
	// Messages in 127.0.0.2's existing session still pass.
	if res := two.Send(h.udp(), bobA.URI, "text/plain", "again"); res.StatusCode != 202 {
		t.Fatalf("existing session from 127.0.0.2: %d", res.StatusCode)
	}
	if m := csA.Recv(); string(m.Body) != "again" {
		t.Fatalf("got %q", m.Body)
	}
	// Another source has its own count.
	if res := three.Send(h.udp(), bobC.URI, "text/plain", "from three"); res.StatusCode != 202 {
		t.Fatalf("session from 127.0.0.3: %d %s", res.StatusCode, res.Reason)
	}
	if m := bobC.WaitInvite().Recv(); string(m.Body) != "from three" {
		t.Fatalf("got %q", m.Body)
	}
	chat.exchange()
	select {
	case <-bobB.Invites():
		t.Fatal("the refused MESSAGE set up a session")
	default:
	}
}

func TestMaxQueuedPerSession(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxQueuedPerSession = 3
		c.Limits.RetryAfter = 3 * time.Second
		c.Gateway.SetupTimeout = time.Second
	})
	chat := startSideChat(t, h)
	alice := testpeer.NewPhone(t, "q-alice")
	bob := testpeer.NewClient(t, "q-bob")
	bob.SetAnswer(0, "") // never answers the INVITE: the session stays in setup and queues

	for i := 0; i < 3; i++ {
		if res := alice.Send(h.udp(), bob.URI, "text/plain", fmt.Sprintf("q%d", i)); res.StatusCode != 202 {
			t.Fatalf("message %d: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	want503(t, alice.Send(h.udp(), bob.URI, "text/plain", "one too many"), "max_queued_per_session")
	refusedEvent(t, h, "max_queued_per_session")
	chat.exchange()

	// The three queued ones fail at setup_timeout (one setup-failed notification covers them), and are
	// counted as failed: the bound is free again.
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 408 {
		t.Fatalf("setup failed with %d", e.Code)
	}
	if n := alice.Recv(); !strings.Contains(string(n.Body()), "408") {
		t.Fatalf("notification %q", n.Body())
	}
	if n := h.events.count(event.MessageFailed); n != 3 {
		t.Fatalf("%d messages failed, want 3", n)
	}
	waitQueuedZero(t, h)
}

func TestMaxQueuedTotal(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxQueuedTotal = 3
		c.Limits.RetryAfter = 3 * time.Second
		c.Gateway.SetupTimeout = time.Second
	})
	alice := testpeer.NewPhone(t, "qt-alice")
	stuck1, stuck2, good := testpeer.NewClient(t, "qt-stuck1"), testpeer.NewClient(t, "qt-stuck2"), testpeer.NewClient(t, "qt-good")
	stuck1.SetAnswer(0, "")
	stuck2.SetAnswer(0, "")

	for i, to := range []*testpeer.Client{stuck1, stuck1, stuck2} {
		if res := alice.Send(h.udp(), to.URI, "text/plain", fmt.Sprintf("m%d", i)); res.StatusCode != 202 {
			t.Fatalf("message %d: %d %s", i, res.StatusCode, res.Reason)
		}
	}
	// Over the total: refused whichever session it is for, a new one included.
	want503(t, alice.Send(h.udp(), stuck2.URI, "text/plain", "over"), "max_queued_total")
	refusedEvent(t, h, "max_queued_total")
	want503(t, alice.Send(h.udp(), good.URI, "text/plain", "over too"), "max_queued_total")
	refusedEvent(t, h, "max_queued_total")

	// When the stuck setups fail, their messages are finished and the bound frees up.
	h.events.waitKind(t, event.SetupFailed)
	h.events.waitKind(t, event.SetupFailed)
	waitQueuedZero(t, h)
	if res := alice.Send(h.udp(), good.URI, "text/plain", "fits again"); res.StatusCode != 202 {
		t.Fatalf("after the setups failed: %d %s", res.StatusCode, res.Reason)
	}
	if m := good.WaitInvite().Recv(); string(m.Body) != "fits again" {
		t.Fatalf("got %q", m.Body)
	}
}

// The MSRP-side bounds are enforced by the msrp endpoint the gateway configures; these tests go through the
// gateway's MSRP port.

// dialMSRPFrom is dialMSRP from another loopback address.
func dialMSRPFrom(t *testing.T, addr, host string) *rawMSRP {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawMSRP{t: t, nc: nc, rd: msrp.NewReader(nc, msrp.Limits{})}
}

// served checks that the gateway serves the connection: a SEND to an unknown session gets its 481.
func (r *rawMSRP) served(gw msrp.URI) {
	r.t.Helper()
	if m := r.probe(gw); m.TransactionID != "probe1234" || m.StatusCode != 481 {
		r.t.Fatalf("probe answered tid %s code %d, want 481", m.TransactionID, m.StatusCode)
	}
}

// dialServed dials (from host) until the gateway serves the connection: a connection the test closed is
// released by the gateway's reader a moment later.
func dialServed(t *testing.T, addr, host string, gw msrp.URI) *rawMSRP {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		r := dialMSRPFrom(t, addr, host)
		from, _ := msrp.ParseURI("msrp://127.0.0.1:9/prober;tcp")
		to := gw
		to.SessionID = "unknownsessionid"
		r.write(sendFrame("probe1234", to, from, "probe-mid", "x"))
		r.nc.SetReadDeadline(time.Now().Add(waitFor))
		if m, err := r.rd.ReadMessage(); err == nil {
			if m.StatusCode != 481 {
				t.Fatalf("probe answered %d", m.StatusCode)
			}
			return r
		}
		r.nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no connection from %s served within %s", host, waitFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMaxConns(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxConns = 3
		c.MSRP.UnboundTimeout = time.Minute // only the bound may close a connection here
	})
	chat := startSideChat(t, h) // the gateway's connection to the side chat's client is one of the 3
	gw := chat.gwPath()
	a := dialMSRP(t, chat.msrpAddr())
	a.served(gw)
	b := dialMSRP(t, chat.msrpAddr())
	b.served(gw)
	over := dialMSRP(t, chat.msrpAddr())
	over.closedByGateway()
	if n := h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.RequestRefused && e.Code == 0 && strings.Contains(e.Reason, "limit 3")
	}); n != 1 {
		t.Fatalf("%d refused MSRP connections counted, want 1", n)
	}
	chat.exchange()
	a.served(gw) // the admitted ones are unaffected

	// A closed connection frees its place.
	b.nc.Close()
	dialServed(t, chat.msrpAddr(), "127.0.0.1", gw)
	chat.exchange()
}

func TestMaxConnsPerSource(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxConnsPerSource = 2
		c.MSRP.UnboundTimeout = time.Minute
	})
	chat := startSideChat(t, h) // one connection, to 127.0.0.1
	gw := chat.gwPath()
	var two []*rawMSRP
	for i := 0; i < 2; i++ {
		r := dialMSRPFrom(t, chat.msrpAddr(), "127.0.0.2")
		r.served(gw)
		two = append(two, r)
	}
	dialMSRPFrom(t, chat.msrpAddr(), "127.0.0.2").closedByGateway()
	// Another source has its own count.
	for i := 0; i < 2; i++ {
		dialMSRPFrom(t, chat.msrpAddr(), "127.0.0.3").served(gw)
	}
	two[0].served(gw)
	chat.exchange()
	two[1].nc.Close()
	dialServed(t, chat.msrpAddr(), "127.0.0.2", gw)
	chat.exchange()
}

func TestMaxHeaderBytes(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxHeaderBytes = 1024
		c.MSRP.UnboundTimeout = time.Minute
	})
	chat := startSideChat(t, h)
	gw := chat.gwPath()
	from, _ := msrp.ParseURI("msrp://127.0.0.1:9/prober;tcp")
	to := gw
	to.SessionID = "unknownsessionid"
	frame := func(junk int) string {
		return msrpFrame("SEND", "tidhdr001", to, from, []string{"Message-ID: m1", "Byte-Range: 1-1/1", "X-Junk: " + strings.Repeat("j", junk), "Content-Type: text/plain"}, "x", '$')
	}
	// Under the bound: served (481 for the unknown session).
	ok := dialMSRP(t, chat.msrpAddr())
	ok.write(frame(500))
	if m := ok.next(); m.TransactionID != "tidhdr001" || m.StatusCode != 481 {
		t.Fatalf("got tid %s code %d, want 481", m.TransactionID, m.StatusCode)
	}
	// Over it: the stream cannot be read on, the connection is closed.
	over := dialMSRP(t, chat.msrpAddr())
	go io.WriteString(over.nc, frame(2000))
	over.closedByGateway()
	ok.served(gw)
	chat.exchange()
}

// limits.max_partial_per_session: an MSRP client with more interleaved partial chunked messages than the
// bound gets 413 for the one over it (and its later chunks); the others complete and are delivered.
func TestMaxPartialPerSession(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Limits.MaxPartialPerSession = 2 })
	chat := startSideChat(t, h)
	carol := testpeer.NewPhone(t, "part-carol")
	dave := testpeer.NewClient(t, "part-dave")
	p := newRawPeer(t, h, dave, carol.URI)
	if code := p.send("tidfirst1", "first"); code != 200 {
		t.Fatalf("first SEND: %d", code)
	}
	if m := carol.Recv(); string(m.Body()) != "first" {
		t.Fatalf("carol got %q", m.Body())
	}
	chunk := func(tid, mid, body string, from, total int, flag byte) int {
		p.write(msrpFrame("SEND", tid, p.gw, p.self, []string{"Message-ID: " + mid,
			fmt.Sprintf("Byte-Range: %d-%d/%d", from, from+len(body)-1, total), "Content-Type: text/plain"}, body, flag))
		for {
			m := p.next()
			if m.Method == "" && m.TransactionID == tid {
				return m.StatusCode
			}
		}
	}
	for i, mid := range []string{"partA", "partB"} {
		if code := chunk(fmt.Sprintf("tidopen%d", i), mid, mid+"-1/", 1, 12, '+'); code != 200 {
			t.Fatalf("first chunk of %s: %d", mid, code)
		}
	}
	if code := chunk("tidopen2", "partC", "partC-1/", 1, 12, '+'); code != 413 {
		t.Fatalf("first chunk of a third partial message: %d, want 413", code)
	}
	if code := chunk("tidrest2", "partC", "2/2\n", 9, 12, '$'); code != 413 {
		t.Fatalf("last chunk of the refused message: %d, want 413", code)
	}
	for i, mid := range []string{"partA", "partB"} {
		if code := chunk(fmt.Sprintf("tidrest%d", i), mid, "2/2\n", 9, 12, '$'); code != 200 {
			t.Fatalf("last chunk of %s: %d", mid, code)
		}
		if m := carol.Recv(); string(m.Body()) != mid+"-1/2/2\n" {
			t.Fatalf("carol got %q", m.Body())
		}
	}
	carol.Quiet(200 * time.Millisecond) // partC never arrives
	chat.exchange()
}

// limits.max_queued_total also bounds MESSAGEs waiting to go to the page-mode side: a SEND over it gets 403 at
// once (never a silent drop), and the place frees up when the queue moves.
func TestMaxQueuedTotalToSIP(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Limits.MaxQueuedTotal = 1 })
	alice := testpeer.NewPhone(t, "alice")
	alice.SetAnswer(0) // alice's phone takes the MESSAGE but never answers: it stays outstanding
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if r := cs.Send("text/plain", "one"); r.StatusCode != 200 {
		t.Fatalf("first SEND: %+v", r)
	}
	alice.Recv()
	if r := cs.Send("text/plain", "two"); r.StatusCode != 403 {
		t.Fatalf("SEND over the bound: %+v, want 403", r)
	}
	if n := h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.RequestRefused && e.Direction == event.ToSIP && e.Code == 403
	}); n != 1 {
		t.Fatalf("%d refusals counted, want 1", n)
	}
}

// limits.max_queued_per_session also bounds a session's MESSAGEs waiting for the page-mode side: one page-mode
// user who does not answer gets that many outstanding, the next SEND gets 403, and another session, whose user
// answers, is unaffected (SPEC §8: that one thing is refused, the rest of the gateway is not). Once the user
// answers, the session has its whole bound again: the refused SEND took no place.
func TestMaxQueuedPerSessionToSIP(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Limits.MaxQueuedPerSession = 2 })
	type held struct {
		body   string
		answer chan<- struct{}
	}
	holding := make(chan held, 16)
	done := make(chan struct{})
	// alice's phone takes each MESSAGE and answers only when the test says: they stay outstanding until then.
	alice := testpeer.NewPhoneWith(t, "alice", testpeer.PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		answer := make(chan struct{}, 1)
		holding <- held{string(req.Body()), answer}
		select {
		case <-answer:
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		case <-done:
		}
		return true
	}})
	t.Cleanup(func() { close(done) }) // before the phone closes: its handlers return
	carol := testpeer.NewPhone(t, "carol")
	bob := testpeer.NewClient(t, "bob")
	toAlice := bob.Call(h.udp(), alice.URI, "actpass")
	for _, body := range []string{"one", "two"} {
		if r := toAlice.Send("text/plain", body); r.StatusCode != 200 {
			t.Fatalf("SEND %q: %+v", body, r)
		}
	}
	next := func(body string) held {
		t.Helper()
		select {
		case m := <-holding:
			if m.body != body {
				t.Fatalf("alice holds %q, want %q", m.body, body)
			}
			return m
		case <-time.After(waitFor):
			t.Fatalf("MESSAGE %q never reached alice", body)
		}
		return held{}
	}
	first := next("one") // the first is out; the second waits behind it
	if r := toAlice.Send("text/plain", "three"); r.StatusCode != 403 {
		t.Fatalf("SEND over the session's bound: %+v, want 403", r)
	}
	if n := h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.RequestRefused && e.Direction == event.ToSIP && e.Code == 403 && strings.Contains(e.Reason, "max_queued_per_session")
	}); n != 1 {
		t.Fatalf("%d refusals counted, want 1", n)
	}
	toCarol := bob.Call(h.udp(), carol.URI, "actpass")
	for _, body := range []string{"a", "b", "c"} {
		if r := toCarol.Send("text/plain", body); r.StatusCode != 200 {
			t.Fatalf("SEND %q in the other session: %+v", body, r)
		}
		if m := carol.Recv(); string(m.Body()) != body {
			t.Fatalf("carol got %q, want %q", m.Body(), body)
		}
	}
	// alice answers the two outstanding ones (the second goes out once the first is answered): the session
	// takes two more, as many as its bound, and no more.
	first.answer <- struct{}{}
	next("two").answer <- struct{}{}
	deadline := time.Now().Add(waitFor)
	for h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.MessageDelivered && e.Direction == event.ToSIP
	}) < 5 { // carol's three and alice's two
		if time.Now().After(deadline) {
			t.Fatal("alice's answers never delivered the two outstanding MESSAGEs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, body := range []string{"four", "five"} {
		if r := toAlice.Send("text/plain", body); r.StatusCode != 200 {
			t.Fatalf("SEND %q after alice answered: %+v, want 200 (the refused SEND must not hold a place)", body, r)
		}
	}
	if r := toAlice.Send("text/plain", "six"); r.StatusCode != 403 {
		t.Fatalf("SEND over the session's bound again: %+v, want 403", r)
	}
}

// SPEC §8: bounded sessions per source address; over the bound "that one thing is refused", which implies a
// source whose session ended may set up another. TestMaxSessionsPerSource never ends a session, so a limiter
// that never gives the per-source place back (releaseSession not decrementing) passes it, while every source
// would be locked out for good after max_sessions_per_source sessions.
func TestMaxSessionsPerSourceFreedOnEnd(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Limits.MaxSessionsPerSource = 1
		c.Limits.RetryAfter = 3 * time.Second
	})
	two := testpeer.NewPhoneWith(t, "rsrc-two", testpeer.PhoneConfig{Host: "127.0.0.2"})
	bobA, bobB := testpeer.NewClient(t, "rsrc-bobA"), testpeer.NewClient(t, "rsrc-bobB")
	if res := two.Send(h.udp(), bobA.URI, "text/plain", "first"); res.StatusCode != 202 {
		t.Fatalf("first session from 127.0.0.2: %d %s", res.StatusCode, res.Reason)
	}
	csA := bobA.WaitInvite()
	csA.Recv()
	want503(t, two.Send(h.udp(), bobB.URI, "text/plain", "second"), "max_sessions_per_source")
	csA.Bye()
	h.events.waitKind(t, event.SessionEnded)
	if res := two.Send(h.udp(), bobB.URI, "text/plain", "after the end"); res.StatusCode != 202 {
		t.Fatalf("127.0.0.2's only session ended, a new one: %d %s %v, want 202", res.StatusCode, res.Reason, res.GetHeader("Warning"))
	}
	if m := bobB.WaitInvite().Recv(); string(m.Body) != "after the end" {
		t.Fatalf("got %q", m.Body)
	}
}

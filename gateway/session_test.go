package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// Each timer of SPEC §3.3 ends the session with BYE; each is counted from the last event, not from start.
func TestTimers(t *testing.T) {
	cases := []struct {
		name   string
		set    func(*config.Config)
		reason string
	}{
		{"message_timeout", func(c *config.Config) { c.Gateway.MessageTimeout = 300 * time.Millisecond }, "message_timeout"},
		{"session_timeout", func(c *config.Config) {
			c.Gateway.MessageTimeout = 10 * time.Second
			c.Gateway.SessionTimeout = 300 * time.Millisecond
		}, "session_timeout"},
		{"max_duration", func(c *config.Config) { c.Gateway.MaxDuration = 300 * time.Millisecond }, "max_duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.set)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			alice.Send(h.udp(), bob.URI, "text/plain", "start")
			cs := bob.WaitInvite()
			cs.Recv()
			e := h.events.waitKind(t, event.SessionEnded)
			if e.Reason != c.reason {
				t.Fatalf("ended by %q, want %q", e.Reason, c.reason)
			}
			cs.WaitBye()
		})
	}
}

// keepAlive calls send every interval, n times, or until the session ended, and returns the longest the
// gateway can have gone without the traffic: from the start of one send (since, for the first) to the return
// of the next, each send returning once the gateway has had it. A session ended by its timer while that stayed
// below the timeout is the failure the callers look for; one ended after a longer gap (a run held up by the
// machine, not the gateway) proves nothing either way.
func keepAlive(h *harness, since time.Time, n int, interval time.Duration, send func()) (longest time.Duration, ended bool) {
	for i := 0; ; i++ {
		if h.events.count(event.SessionEnded) != 0 {
			return max(longest, time.Since(since)), true // the last gap, up to the end seen
		}
		if i == n {
			return longest, false
		}
		time.Sleep(interval)
		start := time.Now()
		send()
		longest = max(longest, time.Since(since))
		since = start
	}
}

// endedDespiteTraffic fails the test when the session ended while keepAlive's traffic kept it, and skips it
// when the traffic itself was held up past the timeout.
func endedDespiteTraffic(t *testing.T, what string, longest time.Duration, ended bool, timeout time.Duration) {
	t.Helper()
	if ended {
		if longest >= timeout {
			t.Skipf("the run held the %s up for %v, past the %v timeout: nothing to check", what, longest, timeout)
		}
		t.Fatalf("session ended while %s kept coming, never more than %v apart (timeout %v)", what, longest, timeout)
	}
}

// message_timeout is counted from the last MESSAGE: traffic keeps the session alive.
func TestMessageTimeoutCountsFromLastMessage(t *testing.T) {
	const timeout = 600 * time.Millisecond
	h := newHarness(t, func(c *config.Config) { c.Gateway.MessageTimeout = timeout })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	start := time.Now()
	alice.Send(h.udp(), bob.URI, "text/plain", "0")
	bob.WaitInvite().Recv()
	// 6 × 150 ms > 600 ms, but never 600 ms without a MESSAGE (keepAlive says when there was).
	longest, ended := keepAlive(h, start, 6, timeout/4, func() { alice.Send(h.udp(), bob.URI, "text/plain", "keepalive") })
	endedDespiteTraffic(t, "MESSAGEs", longest, ended, timeout)
	h.events.waitKind(t, event.SessionEnded)
}

// session_timeout is counted from the last SEND, bodiless keep-alives included: a peer that only keeps its
// connection alive keeps the session.
func TestSessionTimeoutCountsKeepAlives(t *testing.T) {
	const timeout = 600 * time.Millisecond
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.MessageTimeout = 10 * time.Second
		c.Gateway.SessionTimeout = timeout
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	start := time.Now() // before the session is up, when the timer starts
	alice.Send(h.udp(), bob.URI, "text/plain", "0")
	cs := bob.WaitInvite()
	cs.Recv()
	// 6 × 150 ms > 600 ms, but never 600 ms without a SEND (keepAlive says when there was).
	longest, ended := keepAlive(h, start, 6, timeout/4, func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		cs.TrySend(ctx, &msrp.Outgoing{}) // fails only once the session has ended, which keepAlive sees
	})
	endedDespiteTraffic(t, "keep-alives", longest, ended, timeout)
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "session_timeout" {
		t.Fatalf("ended by %q, want session_timeout", e.Reason)
	}
}

// An operator ends a session by key: BYE to the client, gone from the list.
func TestManualEnd(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hello")
	cs := bob.WaitInvite()
	cs.Recv()
	key := bob.URI + ":" + alice.URI
	if _, ok := h.gw.Session(key); !ok {
		t.Fatalf("no session %q in %+v", key, h.gw.Sessions())
	}
	if !h.gw.EndSession(key) {
		t.Fatal("EndSession returned false")
	}
	cs.WaitBye()
	if h.gw.EndSession(key) {
		t.Fatal("a second EndSession found the session again")
	}
}

// A newer INVITE for a key replaces the session (SPEC §3.2 step 3): the old one gets BYE.
func TestSecondInviteReplaces(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	first := bob.Call(h.udp(), alice.URI, "actpass")
	second := bob.Call(h.udp(), alice.URI, "actpass")
	first.WaitBye()
	alice.Send(h.udp(), bob.URI, "text/plain", "to the newer session")
	if m := second.Recv(); string(m.Body) != "to the newer session" {
		t.Fatalf("got %q", m.Body)
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions for one key", n)
	}
}

// Glare: a MESSAGE-first setup is in progress when the client's own INVITE for the key arrives. The INVITE
// wins and the queued message moves to it.
func TestGlareInviteWinsOverSetup(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 5 * time.Second })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetAnswer(0, "") // the gateway's INVITE hangs
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "queued during setup"); res.StatusCode != 202 {
		t.Fatalf("got %d", res.StatusCode)
	}
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if m := cs.Recv(); string(m.Body) != "queued during setup" {
		t.Fatalf("got %q", m.Body)
	}
	if n := h.events.count(event.SetupFailed); n != 0 {
		t.Fatalf("replaced setup reported as failed %d times", n)
	}
}

// A newer INVITE for the key takes over the MESSAGEs whose SENDs are on the wire and unanswered on the old
// session (SPEC §3.3): they move to the new session in the order they were sent, instead of failing with 480,
// and each is delivered and accounted for once.
func TestReplaceMovesUnansweredSends(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	peer := newHoldingPeer(t, h, bob, alice.URI)
	bodies := []string{"first unanswered", "second unanswered"}
	res := make([]chan *sip.Response, len(bodies))
	for i, body := range bodies {
		res[i] = make(chan *sip.Response, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			r, _ := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", body)
			res[i] <- r
		}()
		if i == 0 {
			peer.wait(t) // the peer's reader now holds: the second SEND is written and not even read
		}
	}
	key := bob.URI + ":" + alice.URI
	for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
		if in, ok := h.gw.Session(key); ok && in.Queued == len(bodies) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session never held %d unanswered MESSAGEs", len(bodies))
		}
	}
	cs := bob.Call(h.udp(), alice.URI, "actpass") // same key: replaces the holding session
	for i, body := range bodies {
		if m := cs.Recv(); string(m.Body) != body {
			t.Fatalf("new session got %q as message %d, want %q", m.Body, i, body)
		}
		if r := <-res[i]; r == nil || r.StatusCode != 200 {
			t.Fatalf("MESSAGE %q moved to the new session: answered %v, want 200", body, r)
		}
	}
	if m, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("new session got %q besides", m.Body)
	}
	a := waitAccounted(t, h, len(bodies), 0)
	if a.delivered[event.ToMSRP] != len(bodies) {
		t.Fatalf("%d delivered, %d failed, want %d delivered", a.delivered[event.ToMSRP], a.failed[event.ToMSRP], len(bodies))
	}
}

// A newer INVITE can overtake, on its way through the gateway, the peer's answer to a SEND of the session it
// replaces: the peer got the message and answered it just before it sent the INVITE. That message is
// delivered, and must not move to the new session to be delivered a second time (SPEC §5: nothing is
// delivered twice). The peer here holds its answer a little while after the message reached it, and sends
// the new INVITE meanwhile.
func TestReplaceDoesNotResendAnsweredSend(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	old := bob.Call(h.udp(), alice.URI, "actpass")
	old.SetReplyDelay(150 * time.Millisecond) // answered, but the answer reaches the gateway after the INVITE
	replaceAfterDelivery(t, h, alice, bob, old, "answered before the INVITE")
}

// replaceAfterDelivery has alice send body to bob on the session old, whose answer (its 200, or behind a
// relay its success REPORT) the test delayed, and bob replace old with a new INVITE once old has the message:
// the MESSAGE is answered 200, counted delivered once, and the new session does not get it again.
func replaceAfterDelivery(t *testing.T, h *harness, alice *testpeer.Phone, bob *testpeer.Client, old *testpeer.ClientSession, body string) {
	t.Helper()
	res := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r, _ := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", body)
		res <- r
	}()
	if m := old.Recv(); string(m.Body) != body {
		t.Fatalf("old session got %q", m.Body)
	}
	cs := bob.Call(h.udp(), alice.URI, "actpass") // same key: replaces the old session
	if r := <-res; r == nil || r.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %v, want 200", r)
	}
	if m, ok := cs.TryRecv(500 * time.Millisecond); ok {
		t.Fatalf("new session got %q again: delivered twice", m.Body)
	}
	a := waitAccounted(t, h, 1, 0)
	if a.delivered[event.ToMSRP] != 1 {
		t.Fatalf("%d delivered, %d failed, want 1 delivered", a.delivered[event.ToMSRP], a.failed[event.ToMSRP])
	}
}

// While a newer INVITE waits for the answers to the SENDs of the session it replaces, an error answer (here
// 481: the peer dropped the old MSRP session for the new one) does not fail the message: it moves to the new
// session and is delivered there, as it would have been had the INVITE come after the error.
func TestReplaceMovesSendRefusedMeanwhile(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	old := bob.Call(h.udp(), alice.URI, "actpass")
	old.SetReply(481)
	old.SetReplyDelay(100 * time.Millisecond)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "refused by the old session"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d", res.StatusCode)
	}
	old.Recv()
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if m := cs.Recv(); string(m.Body) != "refused by the old session" {
		t.Fatalf("new session got %q", m.Body)
	}
	if m, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("alice told %q, want the message delivered", m.Body())
	}
	a := waitAccounted(t, h, 1, 0)
	if a.delivered[event.ToMSRP] != 1 {
		t.Fatalf("%d delivered, %d failed, want 1 delivered", a.delivered[event.ToMSRP], a.failed[event.ToMSRP])
	}
}

// Whatever else ends the session a newer INVITE is replacing while it waits for the answers to its SENDs (its
// MSRP connection lost, here) moves its messages to the new session all the same.
func TestReplaceMovesWhenOldEndsMeanwhile(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	old := bob.Call(h.udp(), alice.URI, "actpass")
	old.SetReplyDelay(time.Second)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "unanswered when the connection goes"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d", res.StatusCode)
	}
	old.Recv()
	key := bob.URI + ":" + alice.URI
	s0 := h.gw.table.Get(key)
	heir := newSession(h.gw, key, originInvite)
	h.gw.table.Put(heir)
	replaced := make(chan struct{})
	go func() {
		defer close(replaced)
		h.gw.replace(s0, heir)
	}()
	time.Sleep(50 * time.Millisecond) // replace waits for the SEND's answer
	h.gw.endSession(s0, "msrp_lost", outcomeMSRPConnFailed, true)
	<-replaced
	heir.mu.Lock()
	n := len(heir.queue)
	heir.mu.Unlock()
	if n != 1 || heir.queued.Load() != 1 {
		t.Fatalf("new session holds %d message(s), counted %d, want the one unanswered", n, heir.queued.Load())
	}
	if n := h.events.count(event.MessageFailed); n != 0 {
		t.Fatalf("%d message_failed, want none", n)
	}
	h.gw.endSession(heir, "admin", outcomeSessionEnded, false)
}

// A re-INVITE is answered with our current SDP; a changed path makes the active side reconnect.
func TestReinvite(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "one")
	cs := bob.WaitInvite()
	cs.Recv()
	// bob re-INVITEs with the same SDP: same answer.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, cs.ServerDialog().InviteRequest.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(bob.Media(cs, "passive").Marshal(1, 2))
	res, err := cs.ServerDialog().Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %d", res.StatusCode)
	}
	m, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	sess := h.gw.Sessions()[0]
	if !strings.Contains(strings.Join(m.Path, " "), sess.MSRPSessionID) {
		t.Fatalf("re-INVITE answer path %v does not carry our session %s", m.Path, sess.MSRPSessionID)
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "two")
	if got := cs.Recv(); string(got.Body) != "two" {
		t.Fatalf("after re-INVITE got %q", got.Body)
	}
}

// More bad input: SDP garbage and non-MSRP media get 488 with a Warning; a template needing a missing header
// gets 400; isComposing never creates a session; OPTIONS gets 200.
func TestBadInviteAndTemplates(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Key = "$hdr(X-Chat-Id)" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	for _, body := range []string{"this is not SDP", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"} {
		var ruri sip.Uri
		sip.ParseUri(alice.URI, &ruri)
		req := sip.NewRequest(sip.INVITE, ruri)
		req.AppendHeader(&sip.ContactHeader{Address: ruri})
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody([]byte(body))
		req.SetDestination(h.udp())
		res, err := doReq(bob.SIPClient(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 488 || res.GetHeader("Warning") == nil {
			t.Fatalf("INVITE with %q: %d, want 488 with Warning", body[:10], res.StatusCode)
		}
	}
	res := alice.Send(h.udp(), bob.URI, "text/plain", "no chat id")
	if res.StatusCode != 400 || res.GetHeader("Warning") == nil || !strings.Contains(res.GetHeader("Warning").Value(), "X-Chat-Id") {
		t.Fatalf("missing header: %d %v", res.StatusCode, res.GetHeader("Warning"))
	}
	res = alice.Send(h.udp(), bob.URI, "application/im-iscomposing+xml", "<isComposing/>", sip.NewHeader("X-Chat-Id", "c1"))
	if res.StatusCode/100 != 2 || len(h.gw.Sessions()) != 0 {
		t.Fatalf("isComposing: %d, %d sessions", res.StatusCode, len(h.gw.Sessions()))
	}
	var ruri sip.Uri
	sip.ParseUri("sip:gw@"+h.udp(), &ruri)
	opt := sip.NewRequest(sip.OPTIONS, ruri)
	opt.SetDestination(h.udp())
	if res, err := doReq(alice.SIPClient(), opt); err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %v %v", res, err)
	}
}

// Shutdown drains: a queued MESSAGE fails and is reported, every session gets BYE, nothing is left running.
func TestShutdownByesEverySession(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hello")
	cs := bob.WaitInvite()
	cs.Recv()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cs.WaitBye()
	if h.gw.Ready() {
		t.Fatal("ready after shutdown")
	}
}

// A MESSAGE whose SEND is on the wire and unanswered when shutdown_timeout passes fails with 503, not 480
// (SPEC §3.3: "503 during drain"), and is accounted for once.
func TestShutdownFailsUnansweredSendWith503(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
		c.Gateway.ShutdownTimeout = time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	peer := newHoldingPeer(t, h, bob, alice.URI)
	res := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r, err := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", "unanswered at shutdown")
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	peer.wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r == nil {
		t.Fatal("no response to the MESSAGE")
	}
	if r.StatusCode != 503 {
		t.Fatalf("SEND unanswered at the end of the drain: MESSAGE answered %d %s, want 503", r.StatusCode, r.Reason)
	}
	a := h.events.accounting()
	if a.failed[event.ToMSRP] != 1 || a.delivered[event.ToMSRP] != 0 {
		t.Fatalf("accounted %d failed, %d delivered, want 1 failed", a.failed[event.ToMSRP], a.delivered[event.ToMSRP])
	}
}

// A session that ends during the drain by other means than the drain's end, here the peer's BYE, fails the
// MESSAGEs it still holds with 503, not 480 (SPEC §3.3: "fail with 480 (503 during drain)"): their senders
// learn that the gateway is going away, not that the user is unavailable.
func TestSessionEndedDuringDrainFailsWith503(t *testing.T) {
	bye := func(_ *testpeer.Client, cs *testpeer.ClientSession) { cs.Bye() }
	if r := unansweredAtDrain(t, bye); r.StatusCode != 503 {
		t.Fatalf("MESSAGE left by a session ended during the drain answered %d %s, want 503", r.StatusCode, r.Reason)
	}
}

// The same when the peer drops the MSRP connection instead of sending BYE: the loss ends the session (SPEC
// §3.3), and the SEND it leaves unanswered fails with 503 during the drain, not with the 480 of a lost
// connection.
func TestConnectionLostDuringDrainFailsWith503(t *testing.T) {
	// Its endpoint closed: the connection goes at once. (Closing its session only would not drop it while the
	// SEND is being answered: the response is owed first, RFC 4975 §7.2.) Close waits for the held answer.
	dropMSRP := func(c *testpeer.Client, _ *testpeer.ClientSession) { go c.Endpoint.Close() }
	if r := unansweredAtDrain(t, dropMSRP); r.StatusCode != 503 {
		t.Fatalf("MESSAGE left by a connection lost during the drain answered %d %s, want 503", r.StatusCode, r.Reason)
	}
}

// unansweredAtDrain sends a MESSAGE (wait mode) whose SEND the session-mode peer holds unanswered, drains the
// gateway, lets end end the session from the peer's side, and returns the MESSAGE's final response.
func unansweredAtDrain(t *testing.T, end func(*testpeer.Client, *testpeer.ClientSession)) *sip.Response {
	t.Helper()
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "active")
	cs.SetReplyDelay(time.Second) // the SEND stays unanswered until after the session's end
	res := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r, err := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", "unanswered at the end")
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	cs.Recv()
	h.gw.Drain()
	end(bob, cs)
	r := <-res
	if r == nil {
		t.Fatal("no response to the MESSAGE")
	}
	return r
}

// A MESSAGE answered already (reply: accept) whose SEND is unanswered when shutdown_timeout passes: its
// sender is told by a notification, which goes out before Shutdown returns.
func TestShutdownNotifiesAnsweredMessage(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.ShutdownTimeout = 300 * time.Millisecond })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	peer := newHoldingPeer(t, h, bob, alice.URI)
	if r := alice.Send(h.udp(), bob.URI, "text/plain", "accepted before shutdown"); r.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", r.StatusCode)
	}
	peer.wait(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	m, ok := alice.TryRecv(0)
	if !ok {
		t.Fatal("no failure notification by the time Shutdown returned")
	}
	if body := string(m.Body()); !strings.Contains(body, "503") || !strings.Contains(body, "accepted before shutdown") {
		t.Fatalf("notification %q, want the 503 of the message", body)
	}
}

// A SEND answered 200 whose MESSAGE the page-mode user never answers: when shutdown_timeout passes it fails
// with 503 and its failure REPORT (000 408 "503 ...", SPEC §5) reaches the peer before the session gets BYE;
// Shutdown does not wait for the MESSAGE's transaction, only for shutdown_timeout and a bounded grace.
func TestShutdownReportsPendingToSIP(t *testing.T) {
	const shutdownTimeout = 500 * time.Millisecond
	h := newHarness(t, func(c *config.Config) { c.Gateway.ShutdownTimeout = shutdownTimeout })
	alice := testpeer.NewPhone(t, "alice")
	alice.SetAnswer(0) // never answers
	bob := testpeer.NewClient(t, "bob")
	cs := bob.NewSession() // outlives the gateway's BYE, to read a REPORT that comes just before it
	cs.MSRP.SetPeerPath(inviteByHand(t, h, bob, alice.URI, "application/sdp", bob.Media(cs, sdp.SetupActive).Marshal(1, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	if err := cs.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	r := cs.Send("text/plain", "pending at shutdown")
	if r.StatusCode != 200 {
		t.Fatalf("SEND %+v", r)
	}
	alice.Recv()
	start := time.Now()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took > shutdownTimeout+shutdownGrace {
		t.Errorf("Shutdown took %s, more than shutdown_timeout %s plus the grace %s", took, shutdownTimeout, shutdownGrace)
	}
	select {
	case rep := <-cs.Reports():
		if rep.MessageID != r.MessageID || rep.StatusCode != 408 || rep.Comment != "503 Service Unavailable" {
			t.Fatalf("REPORT %s %d %q, want %s 408 \"503 Service Unavailable\"", rep.MessageID, rep.StatusCode, rep.Comment, r.MessageID)
		}
	case <-time.After(waitFor):
		t.Fatal("no failure REPORT for the MESSAGE left unanswered at the end of the drain")
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "shutdown" {
		t.Fatalf("session ended by %q", e.Reason)
	}
	a := h.events.accounting()
	if a.failed[event.ToSIP] != 1 || a.delivered[event.ToSIP] != 0 {
		t.Fatalf("accounted %d failed, %d delivered to SIP, want 1 failed", a.failed[event.ToSIP], a.delivered[event.ToSIP])
	}
}

// Losing the MSRP connection ends the session with BYE (SPEC §3.3); the next MESSAGE sets up a new one.
func TestMSRPConnectionLostEndsSession(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "one")
	cs := bob.WaitInvite()
	cs.Recv()
	bob.Endpoint.Close() // bob's MSRP side dies without BYE
	e := h.events.waitKind(t, event.SessionEnded)
	if e.Reason != "msrp_lost" {
		t.Fatalf("ended by %q", e.Reason)
	}
	cs.WaitBye()
}

// holdingPeer is a session-mode peer whose MSRP side takes SENDs and answers none until the test ends: the
// MESSAGEs the gateway sent it stay on the wire, unanswered.
type holdingPeer struct {
	got     chan *msrp.Incoming
	release chan struct{}
}

func (p *holdingPeer) HandleMessage(_ *msrp.Session, in *msrp.Incoming) int {
	select {
	case p.got <- in:
	default:
	}
	<-p.release // holds the connection's reader: nothing else is answered either
	return 200
}

func (p *holdingPeer) HandleReport(*msrp.Session, *msrp.Report) {}
func (p *holdingPeer) HandleClose(*msrp.Session, error)         {}

// newHoldingPeer INVITEs the page-mode user toURI through the gateway from client's URI (session first), with
// its own MSRP endpoint whose session holds SENDs. It connects (a=setup:active) and returns once bound.
func newHoldingPeer(t *testing.T, h *harness, client *testpeer.Client, toURI string) *holdingPeer {
	t.Helper()
	ep := msrp.NewEndpoint(msrp.Config{Logger: testpeer.Logger(t).With("who", "holding-peer")})
	if _, err := ep.Listen("tcp", "127.0.0.1:0", false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	p := &holdingPeer{got: make(chan *msrp.Incoming, 16), release: make(chan struct{})}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(p.release) }) }) // before ep.Close, which waits for the reader
	ms := ep.NewSession(p)
	u := ms.LocalURI()
	m := &sdp.Media{Host: u.Host, Port: u.Port, Path: []string{u.String()}, AcceptTypes: []string{"text/plain"}, Setup: sdp.SetupActive}
	ms.SetPeerPath(inviteByHand(t, h, client, toURI, "application/sdp", m.Marshal(1, 1)))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := ms.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait returns the next SEND the peer got; it fails the test after waitFor.
func (p *holdingPeer) wait(t *testing.T) *msrp.Incoming {
	t.Helper()
	select {
	case in := <-p.got:
		return in
	case <-time.After(waitFor):
		t.Fatal("the holding peer got no SEND")
		return nil
	}
}

// An IMDN waiting in the session's control queue (the session not up yet) when a newer INVITE replaces the
// session: like the queued MESSAGEs (SPEC §3.2 step 3) it moves to the new session, which sends it once up.
func TestReplaceMovesWaitingIMDN(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	cs := bob.NewSession()
	first := cpim.Wrap("text/plain", []byte("first"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
		IMDNMessageID: "imdn-first", Disposition: []string{"positive-delivery"}})
	body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + string(bob.Media(cs, sdp.SetupActive).Marshal(1, 1)) +
		"\r\n--b1\r\nContent-Type: message/cpim\r\n\r\n" + string(first.Marshal()) + "\r\n--b1--\r\n"
	inviteByHand(t, h, bob, alice.URI, "multipart/mixed;boundary=b1", []byte(body)) // bob never connects for it
	alice.Recv()
	h.events.waitKind(t, event.MessageDelivered) // alice's 200 handled: the IMDN is made and waits
	time.Sleep(100 * time.Millisecond)
	cs2 := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // a newer INVITE for the key; bob connects
	h.events.waitKind(t, event.SessionStarted)
	m, ok := cs2.TryRecv(3 * time.Second)
	if !ok {
		t.Fatal("the IMDN waiting on the replaced session was dropped, not carried by the new one")
	}
	if c, err := cpim.Parse(m.Body); err != nil || !c.IsControl() {
		t.Fatalf("got %s %q, want the IMDN", m.ContentType, m.Body)
	}
}

// A newer INVITE replaces the session while the page-mode side still holds the MESSAGE a CPIM SEND of the old
// session became. Its answer comes after the replacement: the IMDN `delivered` the sender asked for is end to end
// (RFC 5438), not the old MSRP session's, and goes out on the new session, as an IMDN waiting at the replacement
// does (TestReplaceMovesWaitingIMDN). A page-mode IMDN about it is routed by its key like any MESSAGE: to the
// new session too.
func TestReplaceCarriesLaterIMDN(t *testing.T) {
	h := newHarness(t, nil)
	got := make(chan struct{}, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var held atomic.Bool
	alice := testpeer.NewPhoneWith(t, "alice", testpeer.PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		if held.CompareAndSwap(false, true) { // the first MESSAGE only
			got <- struct{}{}
			<-release
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		return true
	}})
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	old := bob.Call(h.udp(), alice.URI, sdp.SetupActPass)
	first := cpim.Wrap("text/plain", []byte("hello"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
		IMDNMessageID: "imdn-replaced", Disposition: []string{"positive-delivery"}})
	if r := old.SendOut(&msrp.Outgoing{ContentType: "message/cpim", Body: first.Marshal()}); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	select {
	case <-got:
	case <-time.After(waitFor):
		t.Fatal("alice got no MESSAGE")
	}
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // same key: replaces the old session
	old.WaitBye()
	releaseOnce.Do(func() { close(release) }) // alice's 200 now: the IMDN is made after the replacement
	m, ok := cs.TryRecv(3 * time.Second)
	if !ok {
		t.Fatal("the IMDN made after the replacement was dropped, not sent on the new session")
	}
	if c, err := cpim.Parse(m.Body); err != nil || !c.IsControl() || !strings.Contains(string(c.Body), "imdn-replaced") {
		t.Fatalf("got %s %q, want the IMDN for imdn-replaced", m.ContentType, m.Body)
	}

	imdn := `<?xml version="1.0" encoding="UTF-8"?><imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>gw-1</message-id>` +
		`<datetime>2024-01-01T00:00:00Z</datetime><delivery-notification><status><delivered/></status></delivery-notification></imdn>`
	if res := alice.Send(h.udp(), bob.URI, "message/imdn+xml", imdn); res.StatusCode >= 300 {
		t.Fatalf("page-mode IMDN: %d %s", res.StatusCode, res.Reason)
	}
	if m := cs.Recv(); !strings.Contains(string(m.Body), "<message-id>gw-1</message-id>") {
		t.Fatalf("got %s %q on the new session, want the page-mode IMDN", m.ContentType, m.Body)
	}
}

// A SEND reaching a session that is ending (its MSRP session still routes to it while the end runs) gets 481,
// and is logged and counted as a refusal: nothing the gateway refuses goes uncounted (SPEC §5).
func TestSendToEndingSessionRefusedAndCounted(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "end-alice")
	bob := testpeer.NewClient(t, "end-bob")
	bob.Call(h.udp(), alice.URI, "active")
	key := bob.URI + ":" + alice.URI
	s := h.gw.table.Get(key)
	if s == nil {
		t.Fatalf("no session %q", key)
	}
	ms := s.ms
	h.gw.endSession(s, "admin", outcomeSessionEnded, true)
	in := &msrp.Incoming{MessageID: "late-1", ContentType: "text/plain", Body: []byte("late")}
	if code := (&msrpHandler{s: s}).HandleMessage(ms, in); code != 481 {
		t.Fatalf("SEND to an ended session answered %d, want 481", code)
	}
	n := h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.RequestRefused && e.Code == 481 && e.Direction == event.ToSIP && e.Key == key
	})
	if n != 1 {
		t.Fatalf("%d request_refused 481 events, want 1", n)
	}
}

// Once the gateway is closed its queue of MESSAGEs to page-mode users takes nothing more: a notification from
// a goroutine that outlived Close (a message failed on its way out) is refused, not started under close's
// wait (a WaitGroup's Add from zero concurrent with its Wait, which the race detector reports).
func TestClosedGatewayQueuesNoMessage(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "closed-alice")
	h.gw.Close()
	j := &sipJob{coords: Coords{From: "sip:gw@127.0.0.1", To: alice.URI, RURI: alice.URI}, contentType: "text/plain",
		body: []byte("late"), arrived: time.Now(), notice: true, key: "k"}
	if err := h.gw.out.enqueue(j); !errors.Is(err, errOutClosed) {
		t.Fatalf("enqueue after Close: %v, want %v", err, errOutClosed)
	}
}

package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// SPEC §5 with an MSRP relay in the peer's path (its a=path has more than one URI, the first the relay's):
// the relay's 200 to a SEND says only that it took the message, so our SENDs ask for a success REPORT and the
// REPORTs decide the message's fate.

// relayWait is wait mode with room for the REPORT to come back through the relay.
func relayWait(c *config.Config) {
	c.Gateway.Message.Reply = "wait"
	c.Gateway.Message.ReplyWait = 4 * time.Second
}

// behindRelay is a client whose sessions sit behind a relay of their own.
func behindRelay(t *testing.T, user string) (*testpeer.Client, *testpeer.Relay) {
	relay := testpeer.NewRelay(t)
	c := testpeer.NewClient(t, user)
	c.SetRelay(relay)
	return c, relay
}

// sendAt is the SEND with a body the relay got next.
func sendAt(t *testing.T, relay *testpeer.Relay) *msrp.Message {
	t.Helper()
	select {
	case m := <-relay.Sends():
		return m
	case <-time.After(waitFor):
		t.Fatal("the relay got no SEND")
		return nil
	}
}

// The client's success REPORT, back through the relay, is the MESSAGE's 200 and the delivery; the SEND asked
// for it, and for failure reports.
func TestRelaySuccessReportIs200(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	res := alice.Send(h.udp(), bob.URI, "text/plain", "via the relay")
	if res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200 from the success REPORT", res.StatusCode, res.Reason)
	}
	m := sendAt(t, relay)
	if !m.SuccessReport() || m.FailureReport() != "yes" {
		t.Fatalf("SEND through the relay has Success-Report %q, Failure-Report %q; want yes and yes",
			m.Header(msrp.HdrSuccessReport), m.FailureReport())
	}
	if got := string(bob.WaitInvite().Recv().Body); got != "via the relay" {
		t.Fatalf("bob got %q", got)
	}
	e := h.events.waitKind(t, event.MessageDelivered)
	if e.Direction != event.ToMSRP || e.Code != 200 || e.Duration <= 0 {
		t.Fatalf("event %+v", e)
	}
}

// A failure REPORT after the relay's 200, from the client or from the relay itself, fails the MESSAGE with
// the mapped code (SPEC §5 table 1).
func TestRelayFailureReportAfter200(t *testing.T) {
	cases := []struct {
		name           string
		client, relay  int // failure REPORT status sent by the client / by the relay (0: none)
		want           int
		wantFromClient bool
	}{
		{"client 481", 481, 0, 480, true},
		{"client 415", 415, 0, 415, true},
		{"relay 408", 0, 408, 408, false},
		{"relay 500", 0, 500, 500, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, relayWait)
			alice := testpeer.NewPhone(t, "alice")
			bob, relay := behindRelay(t, "bob")
			bob.SetReportFailure(c.client)
			relay.SetReportFailure(c.relay)
			res := alice.Send(h.udp(), bob.URI, "text/plain", "doomed")
			if res.StatusCode != c.want {
				t.Fatalf("MESSAGE answered %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			sendAt(t, relay) // the relay had it, and answered 200 first
			e := h.events.waitKind(t, event.MessageFailed)
			if e.Direction != event.ToMSRP || e.Code != c.want {
				t.Fatalf("event %+v", e)
			}
			if n := h.events.count(event.MessageDelivered); n != 0 {
				t.Fatalf("%d message_delivered events for a failed message", n)
			}
		})
	}
}

// A relay may answer a SEND after the REPORTs about it came back: a success REPORT delivers the message then
// too, and a failure REPORT fails it (the msrp stack ends the Send with it).
func TestRelayReportBeforeItsAnswer(t *testing.T) {
	for _, c := range []struct {
		name         string
		client, want int
	}{{"success", 0, 200}, {"client 481", 481, 480}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, relayWait)
			alice := testpeer.NewPhone(t, "alice")
			bob, relay := behindRelay(t, "bob")
			alice.Send(h.udp(), bob.URI, "text/plain", "set up") // the session is up before the relay holds its answers
			bob.WaitInvite().SetReportFailure(c.client)          // not before: a 481 ends the session
			relay.SetAnswerDelay(time.Second)
			start := time.Now()
			if res := alice.Send(h.udp(), bob.URI, "text/plain", "reported first"); res.StatusCode != c.want {
				t.Fatalf("MESSAGE answered %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			if d := time.Since(start); d >= time.Second {
				t.Fatalf("MESSAGE answered after %s: it waited for the relay's 200, not for the REPORT", d)
			}
		})
	}
}

// No REPORT within reply_wait: 202. A REPORT that comes later decides as SPEC §5 says for what follows a 202: a
// success is a delivery (event only), a failure a notification MESSAGE; no REPORT at all fails the message
// alone, 408, at its deadline (twice msrp.transaction_timeout), and the session carries on.
func TestRelayReportAfterReplyWait(t *testing.T) {
	slow := func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
		c.MSRP.TransactionTimeout = time.Second
	}
	t.Run("late success", func(t *testing.T) {
		h := newHarness(t, slow)
		alice := testpeer.NewPhone(t, "alice")
		bob, relay := behindRelay(t, "bob")
		relay.SetReportDelay(500 * time.Millisecond)
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "slow news"); res.StatusCode != 202 {
			t.Fatalf("MESSAGE answered %d %s, want 202 after reply_wait", res.StatusCode, res.Reason)
		}
		if e := h.events.waitKind(t, event.MessageDelivered); e.Code != 200 || e.Duration < 500*time.Millisecond {
			t.Fatalf("event %+v, want delivered when the REPORT came", e)
		}
		alice.Quiet(300 * time.Millisecond)
	})
	t.Run("late failure", func(t *testing.T) {
		h := newHarness(t, slow)
		alice := testpeer.NewPhone(t, "alice")
		bob, relay := behindRelay(t, "bob")
		bob.SetReportFailure(481)
		relay.SetReportDelay(500 * time.Millisecond)
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "slow bad news"); res.StatusCode != 202 {
			t.Fatalf("MESSAGE answered %d %s, want 202 after reply_wait", res.StatusCode, res.Reason)
		}
		if got, want := string(alice.Recv().Body()), "Message not delivered (480 Temporarily Unavailable): slow bad news"; got != want {
			t.Fatalf("notification %q, want %q", got, want)
		}
	})
	t.Run("no report", func(t *testing.T) {
		h := newHarness(t, slow)
		alice := testpeer.NewPhone(t, "alice")
		bob, relay := behindRelay(t, "bob")
		relay.SetDropReports(true)
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "lost report"); res.StatusCode != 202 {
			t.Fatalf("MESSAGE answered %d %s, want 202 after reply_wait", res.StatusCode, res.Reason)
		}
		cs := bob.WaitInvite()
		cs.Recv()
		if got, want := string(alice.Recv().Body()), "Message not delivered (408 No delivery report): lost report"; got != want {
			t.Fatalf("notification %q, want %q", got, want)
		}
		if e := h.events.waitKind(t, event.MessageFailed); e.Code != 408 {
			t.Fatalf("event %+v", e)
		}
		// Only the message failed: the session is still up, and a REPORT that comes decides the next one.
		relay.SetDropReports(false)
		if res := alice.Send(h.udp(), bob.URI, "text/plain", "reported"); res.StatusCode != 200 {
			t.Fatalf("next MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
		}
		if cs.GotBye() || h.events.count(event.SessionEnded) != 0 {
			t.Fatal("the session ended over a missing REPORT")
		}
	})
}

// A session ending fails the messages still waiting for their REPORT, as it fails unanswered SENDs (SPEC §3.3:
// 480), each reported once.
func TestRelaySessionEndFailsAwaitingReport(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	relay.SetDropReports(true)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "pending"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	cs.Bye()
	if got, want := string(alice.Recv().Body()), "Message not delivered (480 Session ended): pending"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	alice.Quiet(300 * time.Millisecond)
	if n := h.events.count(event.MessageFailed); n != 1 {
		t.Fatalf("%d message_failed events, want 1", n)
	}
}

// With a one-URI path nothing changes: no Success-Report on the wire, and the peer endpoint's 200 is the
// MESSAGE's 200.
func TestNoRelayNoSuccessReport(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "direct"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); m.SuccessReport || m.FailureReport != "yes" {
		t.Fatalf("SEND to a one-URI path has Success-Report %v, Failure-Report %q; want no, yes", m.SuccessReport, m.FailureReport)
	}
}

// A re-INVITE that puts a relay in the peer's path makes the later SENDs ask for a success REPORT, and the
// REPORTs decide; one that takes it out again makes the endpoint's 200 decide again.
func TestReinviteRelayInPath(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway is active, and reconnects
	alice.Send(h.udp(), bob.URI, "text/plain", "direct")
	cs := bob.WaitInvite()
	if m := cs.Recv(); m.SuccessReport {
		t.Fatal("SEND to a one-URI path asked for a success REPORT")
	}

	relay := testpeer.NewRelay(t)
	relay.SetDropReports(true) // no REPORT: only the REPORT may make a 200, so 202 shows the relay is known
	bob.SetRelay(relay)
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, sdp.SetupPassive), 2)
	gw, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	moved.MSRP.SetPeerPath(append([]msrp.URI{relay.URI}, gw...))
	res := alice.Send(h.udp(), bob.URI, "text/plain", "relayed")
	if res.StatusCode != 202 {
		t.Fatalf("MESSAGE through the relay, which drops REPORTs, answered %d %s; want 202", res.StatusCode, res.Reason)
	}
	if m := sendAt(t, relay); !m.SuccessReport() {
		t.Fatal("SEND through the relay did not ask for a success REPORT")
	}
	if m := moved.Recv(); string(m.Body) != "relayed" {
		t.Fatalf("got %q behind the relay", m.Body)
	}
	relay.SetDropReports(false)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "reported"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE through the relay answered %d %s, want 200 from the REPORT", res.StatusCode, res.Reason)
	}
	moved.Recv()

	bob.SetRelay(nil)
	direct := bob.NewSession()
	moveTo(t, direct, reinvite(t, cs, bob.Media(direct, sdp.SetupPassive), 3))
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "direct again"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the relay left the path answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m := direct.Recv(); m.SuccessReport {
		t.Fatal("SEND to a one-URI path again asked for a success REPORT")
	}
}

// Success REPORTs may come chunk by chunk (RFC 4975 §7.1.3): the message is delivered once they cover it from
// its first octet to its last, never on a part of it.
func TestConfirmCoversWholeMessage(t *testing.T) {
	cases := []struct {
		name   string
		ranges []msrp.ByteRange
		want   bool
	}{
		{"whole", []msrp.ByteRange{{Start: 1, End: 6000, Total: 6000}}, true},
		{"no Byte-Range", []msrp.ByteRange{{}}, true},
		{"first chunk", []msrp.ByteRange{{Start: 1, End: 2048, Total: 6000}}, false},
		{"in order", []msrp.ByteRange{{Start: 1, End: 2048, Total: 6000}, {Start: 2049, End: 4096, Total: 6000}, {Start: 4097, End: 6000, Total: 6000}}, true},
		{"last chunk alone", []msrp.ByteRange{{Start: 4097, End: 6000, Total: 6000}}, false},
		{"a gap", []msrp.ByteRange{{Start: 1, End: 2048, Total: 6000}, {Start: 4097, End: 6000, Total: 6000}}, false},
		{"open end", []msrp.ByteRange{{Start: 1, End: -1, Total: 6000}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pm := &pageMessage{size: 6000}
			var got bool
			for _, br := range c.ranges {
				got = pm.confirm(br)
			}
			if got != c.want {
				t.Fatalf("confirmed %v after %v, want %v", got, c.ranges, c.want)
			}
		})
	}
}

// onlySession is the gateway's one session.
func onlySession(t *testing.T, h *harness) *Session {
	t.Helper()
	var all []*Session
	h.gw.table.Range(func(s *Session) bool { all = append(all, s); return true })
	if len(all) != 1 {
		t.Fatalf("%d sessions, want 1", len(all))
	}
	return all[0]
}

// A REPORT takes its message off the session and then settles it; a deadline passing between the two finds
// the message neither awaiting its REPORT nor unanswered. It was not stalled: its outcome is on its way, and
// the session carries on.
func TestDeadlineWhileReportSettles(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob, _ := behindRelay(t, "bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "up"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	bob.WaitInvite().Recv()
	s := onlySession(t, h)
	pm := &pageMessage{msgID: msrp.NewMessageID(), relayed: true, size: 5}
	s.mu.Lock()
	if s.awaiting == nil {
		s.awaiting = make(map[string]*pageMessage)
	}
	s.awaiting[pm.msgID] = pm
	s.mu.Unlock()
	if got, o := s.reported(&msrp.Report{MessageID: pm.msgID, StatusCode: 200}); got != pm || !o.delivered() {
		t.Fatalf("the success REPORT settled %p as %v, want %p delivered", got, o, pm)
	}
	s.deadlinePassed(pm, time.Second) // before the REPORT's finish marks pm done
	if s.ending() {
		t.Fatal("a deadline passing while a REPORT settles its message ended the session")
	}
}

// A newer INVITE replaces a session while a message it sent through the relay still awaits its REPORT: the
// message moves to the new session and goes out again with the same Message-ID (RFC 4975 §5.4), and the new
// session's REPORT alone decides it: delivered once, no failure reported.
func TestRelayReplaceMovesAwaitingReport(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	relay.SetDropReports(true)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "moving"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	old := bob.WaitInvite()
	first := old.Recv()
	relay.SetDropReports(false)
	heir := bob.Call(h.udp(), alice.URI, sdp.SetupPassive) // same key: replaces the session; the gateway connects
	old.WaitBye()
	again := heir.Recv()
	if string(again.Body) != "moving" || again.MessageID != first.MessageID {
		t.Fatalf("the new session got %q with Message-ID %q, want %q with %q", again.Body, again.MessageID, "moving", first.MessageID)
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToMSRP {
		t.Fatalf("event %+v", e)
	}
	alice.Quiet(300 * time.Millisecond)
	if n := h.events.count(event.MessageFailed); n != 0 {
		t.Fatalf("%d message_failed events for a message delivered on the new session", n)
	}
}

// A message wrapped in CPIM and chunked on its way through the relay: the success REPORT covers what was sent,
// the CPIM envelope included, and that is the whole message (pageMessage.size is the wrapped size).
func TestRelayChunkedCPIMReport(t *testing.T) {
	h := newHarness(t, relayWait)
	alice := testpeer.NewPhone(t, "alice")
	bob, _ := behindRelay(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	body := strings.Repeat("chunk me ", 700) // over msrp.chunk_size, and more once wrapped
	if res := alice.Send(h.udp(), bob.URI, "text/plain", body); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200 from the success REPORT", res.StatusCode, res.Reason)
	}
	m := bob.WaitInvite().Recv()
	if m.ContentType != "message/cpim" || len(m.Body) <= len(body) {
		t.Fatalf("bob got %s of %d bytes, want message/cpim wrapping %d bytes", m.ContentType, len(m.Body), len(body))
	}
}

// A re-INVITE takes the relay out of the peer's path while a message it took still awaits its REPORT, which
// can no longer come back through it: the message is not left waiting for ever, nor delivered on a guess. Its
// deadline fails it alone (408, reported to the sender once) and the session carries on over the new path.
func TestReinviteDropsRelayWhileAwaitingReport(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 200 * time.Millisecond
		c.MSRP.TransactionTimeout = 500 * time.Millisecond // the deadline: 1 s
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	relay.SetDropReports(true)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "in limbo"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", res.StatusCode)
	}
	cs := bob.WaitInvite()
	cs.Recv()
	bob.SetRelay(nil)
	direct := bob.NewSession()
	moveTo(t, direct, reinvite(t, cs, bob.Media(direct, sdp.SetupPassive), 2))
	if got, want := string(alice.Recv().Body()), "Message not delivered (408 "; !strings.HasPrefix(got, want) {
		t.Fatalf("notification %q, want it to start %q", got, want)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "direct now"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the relay left answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	alice.Quiet(300 * time.Millisecond)
	if n := h.events.count(event.MessageFailed); n != 1 {
		t.Fatalf("%d message_failed events, want 1", n)
	}
}

// A message the relay took (its 200) whose REPORT has not come when the MSRP connection is lost during the
// drain fails with 503, as an unanswered SEND does then (SPEC §3.3: "fail with 480 (503 during drain)"): its
// sender learns that the gateway is going away.
func TestRelayConnectionLostDuringDrainFailsAwaitingWith503(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	relay.SetDropReports(true)
	res := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r, err := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", "taken by the relay")
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	bob.WaitInvite().Recv()
	// The relay's 200 has reached the gateway: the message awaits its REPORT.
	for deadline := time.Now().Add(waitFor); ; time.Sleep(5 * time.Millisecond) {
		n := 0
		h.gw.table.Range(func(s *Session) bool {
			s.mu.Lock()
			n += len(s.awaiting)
			s.mu.Unlock()
			return true
		})
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message does not await its REPORT")
		}
	}
	h.gw.Drain()
	relay.Close()
	r := <-res
	if r == nil {
		t.Fatal("no response to the MESSAGE")
	}
	if r.StatusCode != 503 {
		t.Fatalf("MESSAGE left awaiting its REPORT by a connection lost during the drain answered %d %s, want 503", r.StatusCode, r.Reason)
	}
}

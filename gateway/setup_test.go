package gateway

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// abandonedInvite makes the gateway INVITE a bare UDP peer that answers nothing, not even 100 Trying (a sipgo
// UA would send one after 200 ms), within setup_timeout: the setup fails with 408 and, as no CANCEL may be
// sent before a provisional response (RFC 3261 §9.1), the INVITE is abandoned. It returns the peer, the
// INVITE and where it came from, for the test to answer it late.
func abandonedInvite(t *testing.T) (*rawUDP, *sip.Request, net.Addr) {
	t.Helper()
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 300 * time.Millisecond })
	alice := testpeer.NewPhone(t, "alice")
	bob := newRawUDP(t)
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "anyone?")
	m, from := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(from.String())
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 408 {
		t.Fatalf("setup_failed %d %s, want 408", e.Code, e.Reason)
	}
	return bob, inv, from
}

// send writes a SIP message to addr as it is.
func (u *rawUDP) send(addr net.Addr, m sip.Message) {
	u.t.Helper()
	if _, err := u.pc.WriteTo([]byte(m.String()), addr); err != nil {
		u.t.Fatal(err)
	}
}

// next returns the next request other than a retransmission of the INVITE inv.
func (u *rawUDP) next(inv *sip.Request) *sip.Request {
	u.t.Helper()
	for {
		m, _ := u.read()
		req, ok := m.(*sip.Request)
		if !ok {
			u.t.Fatalf("peer got %s, want a request", firstLine(m))
		}
		if req.IsInvite() && req.CSeq().SeqNo == inv.CSeq().SeqNo {
			continue
		}
		return req
	}
}

func firstLine(m sip.Message) string {
	line, _, _ := strings.Cut(m.String(), "\r\n")
	return line
}

// A provisional response to an INVITE abandoned at setup_timeout makes the gateway send the CANCEL it could
// not send before.
func TestAbandonedInviteCancelledOnProvisional(t *testing.T) {
	bob, inv, gw := abandonedInvite(t)
	bob.send(gw, sip.NewResponseFromRequest(inv, 180, "Ringing", nil))
	cancel := bob.next(inv)
	if !cancel.IsCancel() || cancel.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("after the 180 the peer got %s, want the INVITE's CANCEL", cancel.StartLine())
	}
	cancel.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(cancel, 200, "OK", nil))
	bob.send(gw, sip.NewResponseFromRequest(inv, 487, "Request Terminated", nil))
}

// A 2xx to an INVITE abandoned at setup_timeout is ACKed and its dialog ended with BYE at once: the peer is
// not left with a session nobody ends.
func TestAbandonedInviteAnsweredGetsBye(t *testing.T) {
	bob, inv, gw := abandonedInvite(t)
	answerLateExpectBye(t, bob, inv, gw)
}

// The same for an INVITE abandoned because the peer's own INVITE for the key replaced the setup (SPEC §3.2
// step 3) before any provisional response.
func TestReplacedInviteAnsweredGetsBye(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := newRawUDP(t)
	bobURI := "sip:bob@" + bob.addr()
	alice.Send(h.udp(), bobURI, "text/plain", "queued")
	m, gw := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(gw.String())

	// bob's INVITE for the same key, from another UA of his.
	other := testpeer.NewClient(t, "bob-other")
	cs := other.NewSession()
	req, err := testpeer.NewRequest(sip.INVITE, bobURI, alice.URI, "application/sdp", other.Media(cs, sdp.SetupActive).Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	inviteAck(t, h, other, req)
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "replaced" {
		t.Fatalf("session ended with reason %q, want replaced", e.Reason)
	}
	answerLateExpectBye(t, bob, inv, gw)
}

// answerLateExpectBye answers the gateway's INVITE inv 200 and expects its ACK and then its BYE.
func answerLateExpectBye(t *testing.T, bob *rawUDP, inv *sip.Request, gw net.Addr) {
	t.Helper()
	answer := &sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{"msrp://127.0.0.1:9/late;tcp"}, AcceptTypes: []string{"text/plain"}, Setup: sdp.SetupActive}
	ok := sip.NewSDPResponseFromRequest(inv, answer.Marshal(1, 1))
	ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: bob.pc.LocalAddr().(*net.UDPAddr).Port}})
	bob.send(gw, ok)
	if ack := bob.next(inv); !ack.IsAck() || ack.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("after the 200 the peer got %s, want the ACK", ack.StartLine())
	}
	bye := bob.next(inv)
	if bye.Method != sip.BYE || bye.CallID().Value() != inv.CallID().Value() {
		t.Fatalf("after the ACK the peer got %s, want the BYE", bye.StartLine())
	}
	bye.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(bye, 200, "OK", nil))
}

// settingUp starts a session from a MESSAGE of alice's towards a bare UDP peer that never answers the
// gateway's INVITE, and returns once the INVITE is out: the session is being set up, its message queued.
func settingUp(t *testing.T, h *harness) (alice *testpeer.Phone, key string) {
	t.Helper()
	alice = testpeer.NewPhone(t, "alice")
	bob := newRawUDP(t)
	if r := alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "queued during setup"); r.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d %s, want 202", r.StatusCode, r.Reason)
	}
	if m, _ := bob.read(); !isInvite(m) {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	list := h.gw.Sessions()
	if len(list) != 1 || list[0].State != "setting-up" {
		t.Fatalf("sessions %+v, want one setting up", list)
	}
	return alice, list[0].Key
}

// An operator ending a session still being set up (SPEC §7) fails no setup, whatever its INVITE got (here
// nothing yet, which a setup_timeout would make 408): the queued message fails once, with the end's 480, its
// sender gets that one notification (SPEC §5), and no setup_failed is raised.
func TestEndDuringSetupIsNoSetupFailure(t *testing.T) {
	h := newHarness(t, nil)
	alice, key := settingUp(t, h)
	if !h.gw.EndSession(key) {
		t.Fatalf("EndSession(%q) found no session", key)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "admin" {
		t.Fatalf("session ended with reason %q, want admin", e.Reason)
	}
	checkEndedDuringSetup(t, h, alice, outcomeSessionEnded)
}

// The same for Shutdown (SPEC §3.3): the queued message fails once with 503.
func TestShutdownDuringSetupIsNoSetupFailure(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.ShutdownTimeout = 300 * time.Millisecond })
	alice, _ := settingUp(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkEndedDuringSetup(t, h, alice, outcomeDraining)
}

// checkEndedDuringSetup checks what settingUp's session left when it was ended during its setup: its message
// failed once with o, one notification of it, and no setup_failed.
func checkEndedDuringSetup(t *testing.T, h *harness, alice *testpeer.Phone, o outcome) {
	t.Helper()
	if body := string(alice.Recv().Body()); !strings.Contains(body, o.String()) || !strings.Contains(body, "queued during setup") {
		t.Fatalf("notification %q, want the message's %s", body, o)
	}
	alice.Quiet(500 * time.Millisecond) // a setup_failed notification would follow at once
	if n := h.events.count(event.SetupFailed); n != 0 {
		t.Fatalf("%d setup_failed event(s) for a session ended during its setup, want none", n)
	}
	failed := h.events.countWhere(func(e event.Event) bool {
		return e.Kind == event.MessageFailed && e.Direction == event.ToMSRP && e.Code == o.Code && e.Reason == o.Reason
	})
	if a := h.events.accounting(); failed != 1 || a.total(event.ToMSRP) != 1 {
		t.Fatalf("%d message_failed %s of %d accounted to MSRP, want the one message failed with it", failed, o, a.total(event.ToMSRP))
	}
}

func isInvite(m sip.Message) bool {
	req, ok := m.(*sip.Request)
	return ok && req.IsInvite()
}

// A forked INVITE answered 2xx by a second branch (another To tag) after the first 2xx was taken: that
// branch's dialog is ACKed with its own To tag and ended with BYE (RFC 3261 §13.2.2.4), not answered with the
// first dialog's ACK and left to its UAS.
func TestForkedInvite2xxAckedAndByed(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := newRawUDP(t)
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "forked")
	m, gw := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(gw.String())
	answer := &sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{"msrp://127.0.0.1:9/fork;tcp"}, AcceptTypes: []string{"text/plain"}, Setup: sdp.SetupActive}
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: bob.pc.LocalAddr().(*net.UDPAddr).Port}}
	answerAs := func(tag string) {
		ok := sip.NewSDPResponseFromRequest(inv, answer.Marshal(1, 1))
		ok.To().Params.Remove("tag")
		ok.To().Params.Add("tag", tag)
		ok.AppendHeader(sip.HeaderClone(contact))
		bob.send(gw, ok)
	}
	answerAs("first")
	if ack := bob.next(inv); !ack.IsAck() || toTag(ack) != "first" {
		t.Fatalf("after the first 200 the peer got %s (To tag %q), want the ACK of dialog first", ack.StartLine(), toTag(ack))
	}
	answerAs("second")
	var acked bool
	for {
		req := bob.next(inv)
		if toTag(req) != "second" {
			continue // the first dialog's requests
		}
		switch {
		case req.IsAck():
			acked = true
		case req.Method == sip.BYE:
			if !acked {
				t.Fatal("the second branch's dialog got its BYE without an ACK")
			}
			if req.CSeq().SeqNo <= inv.CSeq().SeqNo {
				t.Fatalf("BYE CSeq %d, want above the INVITE's %d", req.CSeq().SeqNo, inv.CSeq().SeqNo)
			}
			req.SetSource(gw.String())
			bob.send(gw, sip.NewResponseFromRequest(req, 200, "OK", nil))
			return
		default:
			t.Fatalf("the second branch's dialog got %s, want ACK then BYE", req.StartLine())
		}
	}
}

// setup_timeout after a provisional response fails the setup then, with 408 (SPEC §3.1 step 6): the CANCEL
// goes out, and a UAS that answers it but never sends the INVITE's 487 (RFC 3261 §9.1: an RFC 2543 UAS need
// not) does not hold the setup for another 64·T1.
func TestSetupTimeoutAfterProvisionalNot487Bound(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 300 * time.Millisecond })
	alice := testpeer.NewPhone(t, "alice")
	bob := newRawUDP(t)
	start := time.Now()
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "anyone?")
	m, gw := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(inv, 180, "Ringing", nil))
	cancel := bob.next(inv)
	if !cancel.IsCancel() {
		t.Fatalf("peer got %s, want the CANCEL", cancel.StartLine())
	}
	cancel.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(cancel, 200, "OK", nil))
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 408 {
		t.Fatalf("setup_failed %d %s, want 408", e.Code, e.Reason)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("setup failed %s after the MESSAGE, want about setup_timeout (300ms)", d)
	}
}

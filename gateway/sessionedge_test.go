package gateway

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file tests the edges of session-mode dialogs: INVITEs cancelled or never completed, BYEs at odd times.

// An INVITE CANCELled before its 200 (RFC 3261 §9.2: 487 to the INVITE, 200 to the CANCEL) leaves nothing
// behind: in particular it never replaces the key's live session (SPEC §3.2 step 3 is for a newer session,
// and a cancelled INVITE makes none). Here the CANCEL comes while the router is still deciding.
func TestCancelledInviteReplacesNothing(t *testing.T) {
	routes, err := NewTemplateRouter(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var invites atomic.Int32
	gate := make(chan struct{})
	router := RouterFuncs{Message: routes.RouteMessage, Invite: func(req *sip.Request) (Route, error) {
		if invites.Add(1) == 2 {
			<-gate // the second INVITE: routed only once its CANCEL is answered
		}
		return routes.RouteInvite(req)
	}}
	h := newHarnessWith(t, nil, Options{Router: router})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	first := bob.Call(h.udp(), alice.URI, "active")

	code := cancelledInvite(t, h, bob, alice.URI)
	if code != 487 {
		t.Errorf("the cancelled INVITE answered %d, want 487", code)
	}
	close(gate)
	time.Sleep(300 * time.Millisecond) // byeGrace and more: a replacement would have ended first by now

	select {
	case <-first.ByeReceived():
		t.Fatal("a cancelled INVITE ended the key's live session with BYE")
	default:
	}
	if r := first.Send("text/plain", "still here"); r.StatusCode != 200 {
		t.Fatalf("SEND on the live session answered %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "still here" {
		t.Fatalf("alice got %q", m.Body())
	}
	if n := h.events.count(event.SessionEnded); n != 0 {
		t.Errorf("%d session_ended events, want none", n)
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Errorf("%d sessions, want the first only", n)
	}
	first.Bye()
}

// cancelledInvite sends an INVITE from c to toURI through the gateway, CANCELs it once the gateway's 100
// Trying came, and returns the INVITE's final status. The CANCEL must be answered 200 (RFC 3261 §9.2).
func cancelledInvite(t *testing.T, h *harness, c *testpeer.Client, toURI string) int {
	t.Helper()
	req, err := testpeer.NewRequest(sip.INVITE, c.URI, toURI, "application/sdp", c.Media(c.NewSession(), "active").Marshal(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	req.SetDestination(h.udp())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := c.DialogUA().WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	trying := make(chan struct{})
	var once atomic.Bool
	answered := make(chan error, 1)
	go func() {
		answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
			if res.IsProvisional() && once.CompareAndSwap(false, true) {
				close(trying)
			}
			return nil
		}})
	}()
	select {
	case <-trying:
	case err := <-answered:
		t.Fatalf("INVITE answered before any provisional response: %v", err)
	}
	inv := dlg.InviteRequest
	cr := sip.NewRequest(sip.CANCEL, inv.Recipient)
	cr.AppendHeader(sip.HeaderClone(inv.Via()))
	cr.AppendHeader(sip.HeaderClone(inv.From()))
	cr.AppendHeader(sip.HeaderClone(inv.To()))
	cr.AppendHeader(sip.HeaderClone(inv.CallID()))
	cr.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	cr.SetDestination(h.udp())
	res, err := c.SIPClient().Do(ctx, cr)
	if err != nil {
		t.Fatalf("CANCEL: %v", err)
	}
	if res.StatusCode != 200 {
		t.Errorf("CANCEL answered %d, want 200", res.StatusCode)
	}
	err = <-answered
	if dlg.InviteResponse == nil {
		t.Fatalf("INVITE got no final response: %v", err)
	}
	if dlg.InviteResponse.IsSuccess() {
		dlg.Ack(ctx)
		dlg.Bye(ctx)
	}
	return dlg.InviteResponse.StatusCode
}

// A BYE before the ACK of our 200 (RFC 3261 §15: the caller may end the dialog at once) is answered 200 and
// ends the session: no BYE from the gateway, no 200 retransmitted any more, nothing left in the tables.
func TestByeBeforeAckEndsSession(t *testing.T) {
	h := newHarness(t, nil)
	phone := newRawUDP(t)
	ruri := "sip:alice@" + h.udp()
	head := fmt.Sprintf("From: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: byebeforeack-%s\n", phone.addr())
	res := phone.exchange(h.udp(), fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-inv;rport\n"+
		"Max-Forwards: 70\n%sTo: <%s>\nCSeq: 5 INVITE\nContact: <sip:bob@%s>\nContent-Type: application/sdp\n"+
		"Content-Length: %d\n\n%s", ruri, phone.addr(), head, ruri, phone.addr(), len(activeOffer), activeOffer))
	if res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	phone.write(h.udp(), fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye;rport\nMax-Forwards: 70\n%s%s\n"+
		"CSeq: 6 BYE\nContent-Length: 0\n\n", res.Contact().Address.String(), phone.addr(), head, res.To().String()))
	var byeAnswered bool
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		phone.pc.SetReadDeadline(deadline)
		buf := make([]byte, 65535)
		n, _, err := phone.pc.ReadFrom(buf)
		if err != nil {
			break
		}
		m, err := newSIPParser().ParseSIP(bytes.Clone(buf[:n]))
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *sip.Request:
			t.Fatalf("the gateway sent %s after the peer's BYE", m.StartLine())
		case *sip.Response:
			if m.CSeq().MethodName == sip.BYE {
				if m.StatusCode != 200 {
					t.Fatalf("BYE answered %d %s", m.StatusCode, m.Reason)
				}
				byeAnswered = true
			} else if byeAnswered && time.Now().After(deadline.Add(-time.Second)) {
				t.Fatalf("the 200 to the INVITE still retransmitted a second after the BYE: %s", m.StartLine())
			}
		}
	}
	if !byeAnswered {
		t.Fatal("the BYE got no 200")
	}
	h.events.waitKind(t, event.SessionEnded)
	if n := len(h.gw.Sessions()); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	n := 0
	h.gw.dialogs.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d dialogs left", n)
	}
}

package gateway

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file follows a session's life under the races an operator's traffic makes: ends during setup, timers,
// replacement.

// tryNext is next, but returns nil when no request other than a retransmission of inv comes within d.
func (u *rawUDP) tryNext(inv *sip.Request, d time.Duration) *sip.Request {
	u.t.Helper()
	buf := make([]byte, 65535)
	for deadline := time.Now().Add(d); ; {
		u.pc.SetReadDeadline(deadline)
		n, _, err := u.pc.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return nil
			}
			u.t.Fatal(err)
		}
		msg, err := newSIPParser().ParseSIP(bytes.Clone(buf[:n]))
		if err != nil {
			u.t.Fatal(err)
		}
		req, ok := msg.(*sip.Request)
		if !ok || (req.IsInvite() && req.CSeq().SeqNo == inv.CSeq().SeqNo) {
			continue
		}
		return req
	}
}

// answeredNeverConnects starts a session from a MESSAGE of alice's towards a bare UDP peer that answers the
// gateway's INVITE 200 with a=setup:active, so that it is the one to connect, and never connects: the session
// stays setting up, its dialog confirmed, waiting for the peer's MSRP connection. It returns the peer, the
// INVITE, the gateway's address and the session's key once the ACK came.
func answeredNeverConnects(t *testing.T, h *harness) (bob *rawUDP, inv *sip.Request, gw net.Addr, key string) {
	t.Helper()
	alice := testpeer.NewPhone(t, "alice")
	bob = newRawUDP(t)
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "queued during setup")
	m, gw := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(gw.String())
	answer := &sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{"msrp://127.0.0.1:9/never;tcp"}, AcceptTypes: []string{"text/plain"}, Setup: sdp.SetupActive}
	res := sip.NewSDPResponseFromRequest(inv, answer.Marshal(1, 1))
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: bob.pc.LocalAddr().(*net.UDPAddr).Port}})
	bob.send(gw, res)
	if ack := bob.next(inv); !ack.IsAck() {
		t.Fatalf("after the 200 the peer got %s, want the ACK", ack.StartLine())
	}
	list := h.gw.Sessions()
	if len(list) != 1 || list[0].State != "setting-up" {
		t.Fatalf("sessions %+v, want one setting up", list)
	}
	return bob, inv, gw, list[0].Key
}

// An operator ending a session whose INVITE was answered but whose MSRP side is not bound yet (SPEC §3.1 step
// 6: after the 2xx, BYE) sends one BYE on its dialog, not one for the end and another for the setup it cut.
func TestEndAfterAnswerDuringBindSendsOneBye(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 5 * time.Second })
	bob, inv, gw, key := answeredNeverConnects(t, h)
	if !h.gw.EndSession(key) {
		t.Fatalf("EndSession(%q) found no session", key)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "admin" {
		t.Fatalf("session ended with reason %q, want admin", e.Reason)
	}
	var byes []uint32
	for req := bob.tryNext(inv, time.Second); req != nil; req = bob.tryNext(inv, time.Second) {
		if req.Method != sip.BYE {
			t.Fatalf("peer got %s, want only BYE", req.StartLine())
		}
		byes = append(byes, req.CSeq().SeqNo)
		req.SetSource(gw.String())
		bob.send(gw, sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	if len(byes) != 1 {
		t.Fatalf("peer got BYEs with CSeq %v, want one BYE", byes)
	}
	if n := h.events.count(event.SetupFailed); n != 0 {
		t.Fatalf("%d setup_failed for a session an operator ended", n)
	}
}

package gateway

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/certs"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// A late-offer INVITE (no SDP): the gateway offers in its 200 and takes the answer from the ACK (SPEC §3.2 step 2).
func TestLateOfferInvite(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil) // no SDP: a late offer
	if err != nil {
		t.Fatal(err)
	}
	req.SetDestination(h.udp())
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := bob.DialogUA().WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		t.Fatal(err)
	}
	offer, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		t.Fatalf("no offer in the 200 to a late-offer INVITE: %v", err)
	}
	if offer.Setup != "actpass" {
		t.Fatalf("offer a=setup:%s, want actpass", offer.Setup)
	}
	// Answer passive in the ACK: the gateway (the offerer) connects to us.
	cs := bob.NewSession()
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	cs.MSRP.SetPeerPath(path)
	ack := sip.NewRequest(sip.ACK, dlg.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(bob.Media(cs, "passive").Marshal(3, 1))
	if err := dlg.WriteAck(ctx, ack); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cs.MSRP.Bound():
	case <-ctx.Done():
		t.Fatal("the gateway never connected after the ACK's answer")
	}
	if r := cs.Send("text/plain", "late offer works"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "late offer works" {
		t.Fatalf("got %q", got)
	}
}

// A re-INVITE that changes the peer's path makes the gateway, when it is the active side, connect to the new
// path (SPEC §3.2 step 6); messages then flow on the new MSRP session.
func TestReinvitePathChangeReconnects(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway is active
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	if got := string(cs.Recv().Body); got != "before" {
		t.Fatalf("got %q", got)
	}
	moved := bob.NewSession() // bob's chat moves to a new MSRP session (new path)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, cs.ServerDialog().InviteRequest.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(bob.Media(moved, "passive").Marshal(1, 2))
	res, err := cs.ServerDialog().Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	path, _ := msrp.ParsePath(strings.Join(ans.Path, " "))
	moved.MSRP.SetPeerPath(path)
	select {
	case <-moved.MSRP.Bound():
	case <-ctx.Done():
		t.Fatal("the gateway did not connect to the new path")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// reinvite sends a re-INVITE offering m on cs's dialog (whichever side set it up) and returns the gateway's
// SDP answer.
func reinvite(t *testing.T, cs *testpeer.ClientSession, m *sdp.Media, version uint64) *sdp.Media {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var res *sip.Response
	var err error
	if d := cs.ServerDialog(); d != nil {
		req := sip.NewRequest(sip.INVITE, d.InviteRequest.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(m.Marshal(1, version))
		res, err = d.Do(ctx, req)
	} else {
		d := cs.ClientDialog()
		req := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(m.Marshal(2, version))
		res, err = d.Do(ctx, req)
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatalf("re-INVITE answer: %v", err)
	}
	return ans
}

// moveTo points a new session of the client at the gateway's path in ans.
func moveTo(t *testing.T, moved *testpeer.ClientSession, ans *sdp.Media) {
	t.Helper()
	path, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	moved.MSRP.SetPeerPath(path)
}

// A re-INVITE's answer says active or passive, never actpass (RFC 4145 §4.1, RFC 6135): to actpass the
// gateway keeps its role, so the side that connected stays active and the connection stays in use; a
// re-offer that says active makes it passive. Session set up from the MESSAGE side (our offer said actpass).
func TestReinviteAnswerSetup(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway connected
	alice.Send(h.udp(), bob.URI, "text/plain", "one")
	cs := bob.WaitInvite()
	cs.Recv()
	for i, tc := range []struct{ offer, want string }{
		{sdp.SetupActPass, sdp.SetupActive},
		{sdp.SetupActive, sdp.SetupPassive},
	} {
		ans := reinvite(t, cs, bob.Media(cs, tc.offer), uint64(2+i))
		if ans.Setup != tc.want {
			t.Fatalf("re-offer a=setup:%s answered a=setup:%q, want %s", tc.offer, ans.Setup, tc.want)
		}
		body := "after re-offer " + tc.offer
		alice.Send(h.udp(), bob.URI, "text/plain", body)
		if got := string(cs.Recv().Body); got != body {
			t.Fatalf("got %q on the kept connection", got)
		}
	}
}

// The peer is the offerer of a re-INVITE: its a=setup decides who connects, as for an INVITE. Session first,
// the gateway passive; the re-offer moves the chat to a new path and says passive: the gateway answers active
// and connects to the new path.
func TestReinviteOfferMakesUsActive(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs.Recv()
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, sdp.SetupPassive), 2)
	if ans.Setup != sdp.SetupActive {
		t.Fatalf("re-offer a=setup:passive answered a=setup:%q, want active", ans.Setup)
	}
	moveTo(t, moved, ans)
	select {
	case <-moved.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway did not connect to the new path")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// A re-offer without a=setup: the RFC 4145 default makes the offerer (the peer) connect, also on a session the
// gateway set up as the active side. The answer says passive and the peer's new connection carries the chat.
func TestReinviteOfferWithoutSetup(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway connected
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	cs.Recv()
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, ""), 2)
	if ans.Setup != sdp.SetupPassive {
		t.Fatalf("re-offer without a=setup answered a=setup:%q, want passive", ans.Setup)
	}
	moveTo(t, moved, ans)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := moved.MSRP.Connect(ctx); err != nil {
		t.Fatalf("connecting to the gateway's path: %v", err)
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// udp:HOST:0 and tcp:HOST:0 share one port, so the Contact reaches both transports.
func TestEphemeralListenersShareAPort(t *testing.T) {
	h := newHarness(t, nil)
	_, up, _ := net.SplitHostPort(h.gw.SIPAddr("udp"))
	_, tp, _ := net.SplitHostPort(h.gw.SIPAddr("tcp"))
	if up != tp {
		t.Fatalf("udp port %s, tcp port %s", up, tp)
	}
}

// A tls:HOST:0 listener next to udp/tcp ones gets a port of its own (it is a second TCP socket).
func TestEphemeralTLSListenerOwnPort(t *testing.T) {
	certFile, keyFile, err := certs.WriteTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = append(c.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.1:0"})
		c.SIP.TLS.Cert, c.SIP.TLS.Key = certFile, keyFile
	})
	_, up, _ := net.SplitHostPort(h.gw.SIPAddr("udp"))
	_, tp, _ := net.SplitHostPort(h.gw.SIPAddr("tcp"))
	_, sp, _ := net.SplitHostPort(h.gw.SIPAddr("tls"))
	if up != tp || sp == tp || sp == "" {
		t.Fatalf("udp %s tcp %s tls %s", up, tp, sp)
	}
}

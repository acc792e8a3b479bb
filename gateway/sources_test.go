package gateway

import (
	"fmt"
	"net"
	"net/netip"
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

// This file tests what depends on the source address of a request (sip.trusted, per-source bounds): phones
// bound to other loopback addresses (127.0.0.2 …, testpeer.PhoneConfig.Host).

// sip.trusted: a MESSAGE or INVITE from a source outside it gets 403 and is counted; trusted sources are
// served as before.
func TestUntrustedSourceRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	chat := startSideChat(t, h)
	mallory := testpeer.NewPhoneWith(t, "mallory", testpeer.PhoneConfig{Host: "127.0.0.2"})
	bob := testpeer.NewClient(t, "trusted-bob")

	res := mallory.Send(h.udp(), bob.URI, "text/plain", "let me in")
	if res.StatusCode != 403 {
		t.Fatalf("MESSAGE from 127.0.0.2: got %d %s, want 403", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.RequestRefused); e.Code != 403 {
		t.Fatalf("RequestRefused event with code %d", e.Code)
	}

	// An INVITE from the same source: 403 too.
	inv, err := testpeer.NewRequest(sip.INVITE, mallory.URI, bob.URI, "application/sdp", []byte("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	inv.AppendHeader(&sip.ContactHeader{Address: inv.From().Address})
	inv.SetDestination(h.udp())
	res, err = doReq(mallory.SIPClient(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 {
		t.Fatalf("INVITE from 127.0.0.2: got %d %s, want 403", res.StatusCode, res.Reason)
	}
	if n := h.events.count(event.RequestRefused); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
	select {
	case <-bob.Invites():
		t.Fatal("an untrusted MESSAGE set up a session")
	default:
	}
	chat.exchange()
}

// The default sip.trusted is loopback only, which covers 127.0.0.2.
func TestDefaultTrustedIsLoopback(t *testing.T) {
	h := newHarness(t, nil)
	carol := testpeer.NewPhoneWith(t, "carol2", testpeer.PhoneConfig{Host: "127.0.0.2"})
	bob := testpeer.NewClient(t, "loop-bob")
	if res := carol.Send(h.udp(), bob.URI, "text/plain", "hi"); res.StatusCode != 202 {
		t.Fatalf("got %d %s, want 202", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
}

// An in-dialog BYE from a source outside sip.trusted gets 403 even when it names a live session's Call-ID
// and tags (sniffed or guessed): the session goes on.
func TestUntrustedByeRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	chat := startSideChat(t, h)
	dlg := chat.cs.ServerDialog() // bob's side of the gateway's INVITE: the BYE bob would send
	inv := dlg.InviteRequest
	bobTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	mallory := newRawUDPOn(t, "127.0.0.2")
	bye := fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-mallory-bye\nMax-Forwards: 70\n"+
		"From: <%s>;tag=%s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: 10 BYE\nContent-Length: 0\n\n",
		inv.Contact().Address.String(), mallory.addr(), chat.bob.URI, bobTag, inv.From().Address.String(),
		fromTag(inv), callID(inv))
	if res := mallory.exchange(h.udp(), bye); res.StatusCode != 403 {
		t.Fatalf("BYE from 127.0.0.2 in the session's dialog: got %d %s, want 403", res.StatusCode, res.Reason)
	}
	chat.exchange() // the same session, still up
}

// The ACK to a late-offer INVITE's 200 carries the SDP answer, the peer's a=path: one from a source outside
// sip.trusted that names the dialog is ignored, and the gateway connects where the caller's own ACK says,
// never to a path an untrusted host gave it.
func TestUntrustedAckAnswerIgnored(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil) // no SDP: a late offer
	if err != nil {
		t.Fatal(err)
	}
	offer, dlg := inviteAnswered(t, h, bob, req)

	// Mallory, on another host, answers first: passive, so that the gateway would connect to her.
	trap, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer trap.Close()
	connected := make(chan struct{}, 1)
	go func() {
		if c, err := trap.Accept(); err == nil {
			connected <- struct{}{}
			c.Close()
		}
	}()
	port := trap.Addr().(*net.TCPAddr).Port
	answer := fmt.Sprintf("v=0\no=- 1 1 IN IP4 127.0.0.2\ns=-\nc=IN IP4 127.0.0.2\nt=0 0\n"+
		"m=message %d TCP/MSRP *\na=accept-types:text/plain\na=path:msrp://127.0.0.2:%d/mallory;tcp\na=setup:passive\n", port, port)
	answer = strings.ReplaceAll(answer, "\n", "\r\n")
	gwTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	mallory := newRawUDPOn(t, "127.0.0.2")
	mallory.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-mallory-ack\nMax-Forwards: 70\n"+
		"From: <%s>;tag=%s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: 1 ACK\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		dlg.InviteResponse.Contact().Address.String(), mallory.addr(), bob.URI, fromTag(req), alice.URI, gwTag, callID(req),
		len(answer))+answer)

	// Bob's own ACK and answer: the session comes up with him.
	cs := bob.NewSession()
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	cs.MSRP.SetPeerPath(path)
	time.Sleep(200 * time.Millisecond) // mallory's ACK is in first
	ackWith(t, dlg, bob.Media(cs, "passive"))
	select {
	case <-connected:
		t.Fatal("the gateway connected to the a=path of an ACK from 127.0.0.2")
	case <-cs.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway never connected to bob after his ACK")
	}
	if r := cs.Send("text/plain", "it is bob"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "it is bob" {
		t.Fatalf("got %q", got)
	}
}

// A UA whose INVITE came through a trusted proxy that did not Record-Route sends its BYE itself, from its own
// address, which sip.trusted need not hold: the host of the dialog's Contact may end it.
func TestDialogPeerOutsideTrustedMayBye(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	ua := newRawUDPOn(t, "127.0.0.3")                     // where bob's UA itself is
	offer := bob.Media(bob.NewSession(), sdp.SetupActive) // bob would connect; the BYE comes first
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", offer.Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	var contact sip.Uri
	if err := sip.ParseUri("sip:bob@"+ua.addr(), &contact); err != nil {
		t.Fatal(err)
	}
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	_, dlg := inviteAck(t, h, bob, req) // through the "proxy", 127.0.0.1
	gwTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	bye := fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ua-bye\nMax-Forwards: 70\n"+
		"From: <%s>;tag=%s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: %d BYE\nContent-Length: 0\n\n",
		dlg.InviteResponse.Contact().Address.String(), ua.addr(), bob.URI, fromTag(req), alice.URI, gwTag, callID(req),
		dlg.InviteRequest.CSeq().SeqNo+1) // after the INVITE's: a lower one is out of order (500)
	if res := ua.exchange(h.udp(), bye); res.StatusCode != 200 {
		t.Fatalf("BYE from the dialog's Contact host 127.0.0.3: got %d %s, want 200", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "bye" {
		t.Fatalf("session ended with %q, want bye", e.Reason)
	}
}

// The dialog's peer outside sip.trusted sends its re-INVITEs itself too, as its BYE (a session refresh, a new
// a=path, SPEC §3.2 step 6): from the host of the dialog's Contact it is answered 200, not 403, and a BYE from
// the host of the Contact it moved the dialog to is taken as well. Another untrusted host still gets 403.
func TestDialogPeerOutsideTrustedMayReinvite(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.Gateway.SetupTimeout = 10 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	ua, moved, mallory := newRawUDPOn(t, "127.0.0.3"), newRawUDPOn(t, "127.0.0.4"), newRawUDPOn(t, "127.0.0.5")
	offer := bob.Media(bob.NewSession(), sdp.SetupActive) // bob would connect; he never does here
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", offer.Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	var contact sip.Uri
	if err := sip.ParseUri("sip:bob@"+ua.addr(), &contact); err != nil {
		t.Fatal(err)
	}
	req.AppendHeader(&sip.ContactHeader{Address: contact})
	_, dlg := inviteAck(t, h, bob, req) // through the "proxy", 127.0.0.1
	gwTag, _ := dlg.InviteResponse.To().Params.Get("tag")
	cseq := dlg.InviteRequest.CSeq().SeqNo
	sdpBody := offer.Marshal(1, 2)
	body := strings.ReplaceAll(string(sdpBody), "\r\n", "\n") // as written: every LF becomes CRLF again
	inDialog := func(u *rawUDP, method string, n uint32, extra string) string {
		return fmt.Sprintf("%s %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d\nMax-Forwards: 70\n"+
			"From: <%s>;tag=%s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: %d %s\n%s",
			method, dlg.InviteResponse.Contact().Address.String(), u.addr(), strings.ToLower(method), n,
			bob.URI, fromTag(req), alice.URI, gwTag, callID(req), n, method, extra)
	}
	reinvite := func(u *rawUDP, n uint32) *sip.Response {
		return u.exchange(h.udp(), inDialog(u, "INVITE", n, fmt.Sprintf(
			"Contact: <sip:bob@%s>\nContent-Type: application/sdp\nContent-Length: %d\n\n%s", moved.addr(), len(sdpBody), body)))
	}
	if res := reinvite(mallory, cseq+1); res.StatusCode != 403 {
		t.Fatalf("re-INVITE from 127.0.0.5, neither trusted nor the dialog's peer: %d %s, want 403", res.StatusCode, res.Reason)
	}
	res := reinvite(ua, cseq+2)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE from the dialog's Contact host 127.0.0.3: %d %s, want 200", res.StatusCode, res.Reason)
	}
	ua.write(h.udp(), inDialog(ua, "ACK", cseq+2, "Content-Length: 0\n\n"))
	// The re-INVITE moved the dialog's remote target to 127.0.0.4: its BYE comes from there.
	if res := moved.exchange(h.udp(), inDialog(moved, "BYE", cseq+3, "Content-Length: 0\n\n")); res.StatusCode != 200 {
		t.Fatalf("BYE from the host of the re-INVITE's Contact 127.0.0.4: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "bye" {
		t.Fatalf("session ended with %q, want bye", e.Reason)
	}
}

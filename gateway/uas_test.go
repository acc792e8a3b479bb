package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// rawInvite is an INVITE from u to the gateway's UDP listener with activeOffer, Call-ID callID, CSeq 5 and
// extra headers (lines ending in \n).
func rawInvite(u *rawUDP, h *harness, callID, extra string) string {
	ruri := "sip:alice@" + h.udp()
	return fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\nMax-Forwards: 70\n"+
		"From: <sip:bob@127.0.0.1>;tag=b1\nTo: <%s>\nCall-ID: %s\nCSeq: 5 INVITE\nContact: <sip:bob@%s>\n%s"+
		"Content-Type: application/sdp\nContent-Length: %d\n\n%s",
		ruri, u.addr(), callID, ruri, callID, u.addr(), extra, len(activeOffer), activeOffer)
}

// An INVITE requiring an extension the gateway does not support (100rel, RFC 3262, or any unknown option
// tag) gets 420 Bad Extension with an Unsupported header listing them, and sets up no session (RFC 3261
// §8.2.2.3). Answered 200, the peer would expect reliable provisionals, or whatever the extension says, that
// never come.
func TestInviteRequiringExtensionGets420(t *testing.T) {
	h := newHarness(t, shortSetup)
	phone := newRawUDP(t)
	for i, c := range []struct{ require, unsupported string }{
		{"Require: 100rel\n", "100rel"},
		{"Require: 100rel, x-unknown\n", "100rel, x-unknown"},
		{"Require: 100rel\nRequire: foo\n", "100rel, foo"},
	} {
		res := phone.exchange(h.udp(), rawInvite(phone, h, fmt.Sprintf("require-%d", i), c.require))
		if res.StatusCode != 420 {
			t.Fatalf("%q: INVITE answered %d %s, want 420", c.require, res.StatusCode, res.Reason)
		}
		if u := res.GetHeader("Unsupported"); u == nil || u.Value() != c.unsupported {
			t.Fatalf("%q: 420 with Unsupported %v, want %q", c.require, u, c.unsupported)
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions from refused INVITEs", n)
	}
	// Supported names what the peer can do, not what it needs: no refusal.
	res := phone.exchange(h.udp(), rawInvite(phone, h, "supported", "Supported: 100rel, timer\n"))
	if res.StatusCode != 200 {
		t.Fatalf("INVITE with Supported answered %d %s, want 200", res.StatusCode, res.Reason)
	}
}

// A re-INVITE or a BYE requiring an unsupported extension gets 420 too, and the session stays.
func TestInDialogRequestRequiringExtensionGets420(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr())
	head := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	via := "Via: SIP/2.0/UDP " + phone.addr() + ";branch=z9hG4bK-"
	for _, req := range []string{
		"INVITE " + head + via + "reinv\nCSeq: 6 INVITE\nRequire: 100rel\nContact: <sip:bob@" + phone.addr() + ">\nContent-Length: 0\n\n",
		"BYE " + head + via + "bye\nCSeq: 7 BYE\nRequire: x-unknown\nContent-Length: 0\n\n",
	} {
		res := phone.exchange(h.udp(), req)
		if res.StatusCode != 420 || res.GetHeader("Unsupported") == nil {
			t.Fatalf("answered %d %s, Unsupported %v, want 420 with one", res.StatusCode, res.Reason, res.GetHeader("Unsupported"))
		}
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want the one the refused requests left alone", n)
	}
}

// A re-INVITE is a target refresh request (RFC 3261 §12.2.2): its Contact replaces the dialog's remote
// target, and the gateway's BYE goes there, not to the first INVITE's Contact, which the peer may have left.
func TestReinviteContactIsTheByesTarget(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone, moved := newRawUDP(t), newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr())
	head := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	via := "Via: SIP/2.0/UDP " + phone.addr() + ";branch=z9hG4bK-"
	res := phone.exchange(h.udp(), "INVITE "+head+via+"reinv\nCSeq: 6 INVITE\nContact: <sip:bob@"+moved.addr()+">\n"+
		"Content-Type: application/sdp\nContent-Length: "+fmt.Sprint(len(activeOffer))+"\n\n"+activeOffer)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	phone.write(h.udp(), "ACK "+head+via+"reack\nCSeq: 6 ACK\nContent-Length: 0\n\n")
	sessions := h.gw.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(sessions))
	}
	time.Sleep(50 * time.Millisecond) // the ACK in
	h.gw.EndSession(sessions[0].Key)
	expectRequest(t, moved, h, sip.BYE, "sip:bob@"+moved.addr())
}

// So it is in a dialog the gateway's INVITE set up (MESSAGE first): the peer's re-INVITE moves the BYE that
// ends the setup too.
func TestReinviteContactIsTheByesTargetMessageFirst(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.SetupTimeout = 2 * time.Second
		c.Gateway.SetupFailed.Notify = false
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, moved := newRawUDP(t), newRawUDP(t)
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "hello")
	inv, from := bob.request()
	answerInvite(bob, inv, from, "sip:bob@"+bob.addr())
	expectRequest(t, bob, h, sip.ACK, "sip:bob@"+bob.addr())
	to := inv.From() // the gateway's side, its tag included
	res := bob.exchange(h.udp(), fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-reinv\nMax-Forwards: 70\n"+
		"From: %s;tag=peer\nTo: %s\nCall-ID: %s\nCSeq: 1 INVITE\nContact: <sip:bob@%s>\nContent-Type: application/sdp\n"+
		"Content-Length: %d\n\n%s", inv.Contact().Address.String(), bob.addr(), inv.To().Value(), to.Value(),
		inv.CallID().Value(), moved.addr(), len(activeOffer), activeOffer))
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	bob.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-reack\nMax-Forwards: 70\n"+
		"From: %s;tag=peer\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nContent-Length: 0\n\n", inv.Contact().Address.String(),
		bob.addr(), inv.To().Value(), to.Value(), inv.CallID().Value()))
	expectRequest(t, moved, h, sip.BYE, "sip:bob@"+moved.addr()) // setup_timeout: nobody connected
}

// A re-INVITE whose CSeq is lower than the last the peer sent in the dialog is out of order: 500, and it
// changes nothing (RFC 3261 §12.2.2). Taken, a late re-INVITE would put back the peer path a later one left.
func TestReinviteWithLowerCSeqGets500(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr()) // CSeq 5
	head := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	reinvite := func(cseq int, path string) *sip.Response {
		offer := strings.Replace(activeOffer, "127.0.0.1:9/never", path, 1)
		phone.write(h.udp(), fmt.Sprintf("INVITE %sVia: SIP/2.0/UDP %s;branch=z9hG4bK-reinv%d\nCSeq: %d INVITE\n"+
			"Contact: <sip:bob@%s>\nContent-Type: application/sdp\nContent-Length: %d\n\n%s",
			head, phone.addr(), cseq, cseq, phone.addr(), len(offer), offer))
		for {
			// Skipping an earlier answer's retransmissions: what was refused is not ACKed here.
			if res := phone.final(); int(res.CSeq().SeqNo) == cseq {
				if res.StatusCode == 200 {
					phone.write(h.udp(), fmt.Sprintf("ACK %sVia: SIP/2.0/UDP %s;branch=z9hG4bK-reack%d\nCSeq: %d ACK\n"+
						"Content-Length: 0\n\n", head, phone.addr(), cseq, cseq))
				}
				return res
			}
		}
	}
	if res := reinvite(4, "127.0.0.1:9/lower"); res.StatusCode != 500 {
		t.Fatalf("re-INVITE with CSeq 4 after 5 answered %d %s, want 500", res.StatusCode, res.Reason)
	}
	if res := reinvite(7, "127.0.0.1:9/seven"); res.StatusCode != 200 {
		t.Fatalf("re-INVITE with CSeq 7 answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if res := reinvite(6, "127.0.0.1:9/six"); res.StatusCode != 500 {
		t.Fatalf("re-INVITE with CSeq 6 after 7 answered %d %s, want 500", res.StatusCode, res.Reason)
	}
	if p := h.gw.Sessions()[0].MSRPPeerPath; !strings.Contains(p, "/seven") {
		t.Fatalf("peer path %s, want the one of CSeq 7", p)
	}
}

// A dialog is its Call-ID and both tags (RFC 3261 §12): a BYE naming the gateway's tag but another remote tag
// (another fork's dialog, a stale one) is in no dialog of the gateway's: 481, and the session stays.
func TestByeWithAnotherFromTagGets481(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr()) // From tag b1
	res := phone.exchange(h.udp(), fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye\nMax-Forwards: 70\n"+
		"From: <sip:bob@127.0.0.1>;tag=other\nCall-ID: indialog-%s\n%s\nCSeq: 6 BYE\nContent-Length: 0\n\n",
		first.Contact().Address.String(), phone.addr(), phone.addr(), first.To().String()))
	if res.StatusCode != 481 {
		t.Fatalf("BYE with another From tag answered %d %s, want 481", res.StatusCode, res.Reason)
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want the one the BYE did not name", n)
	}
}

// A MESSAGE requiring an extension gets 420 with Unsupported like any other request (RFC 3261 §8.2.2.3), and
// sets up nothing.
func TestMessageRequiringExtensionGets420(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "req-alice")
	bob := testpeer.NewClient(t, "req-bob")
	req := alice.NewMessage(bob.URI, "text/plain", "needs an extension")
	req.AppendHeader(sip.NewHeader("Require", "x-unknown"))
	req.SetDestination(h.udp())
	res, err := doReq(alice.SIPClient(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 420 {
		t.Fatalf("MESSAGE answered %d %s, want 420", res.StatusCode, res.Reason)
	}
	if u := res.GetHeader("Unsupported"); u == nil || u.Value() != "x-unknown" {
		t.Fatalf("420 with Unsupported %v, want x-unknown", u)
	}
	select {
	case cs := <-bob.Invites():
		t.Fatalf("a refused MESSAGE set up a session: INVITE %s", cs.CallID)
	case <-time.After(200 * time.Millisecond):
	}
}

// A BYE whose CSeq is lower than the last the peer sent in the dialog is out of order: 500, and the session
// stays (RFC 3261 §12.2.2) — lower than the INVITE's, or than a later re-INVITE's. A BYE in order ends it, and
// its retransmission gets its 200 again.
func TestByeWithLowerCSeqGets500(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr()) // CSeq 5
	head := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	bye := func(cseq int) string {
		return fmt.Sprintf("BYE %sVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye%d\nCSeq: %d BYE\nContent-Length: 0\n\n",
			head, phone.addr(), cseq, cseq)
	}
	answer := func(cseq int) *sip.Response {
		t.Helper()
		for {
			// Skipping an earlier answer's retransmissions.
			if res := phone.final(); int(res.CSeq().SeqNo) == cseq && res.CSeq().MethodName == sip.BYE {
				return res
			}
		}
	}
	stays := func(what string) {
		t.Helper()
		if n := len(h.gw.Sessions()); n != 1 {
			t.Fatalf("%d sessions after %s, want the session still there", n, what)
		}
		if n := h.events.count(event.SessionEnded); n != 0 {
			t.Fatalf("%d session_ended after %s, want none", n, what)
		}
	}

	phone.write(h.udp(), bye(4))
	if res := answer(4); res.StatusCode != 500 {
		t.Fatalf("BYE with CSeq 4 after the INVITE's 5 answered %d %s, want 500", res.StatusCode, res.Reason)
	}
	stays("BYE 4")

	// A re-INVITE raises the remote CSeq to 7: a BYE with 6 is out of order now.
	phone.write(h.udp(), fmt.Sprintf("INVITE %sVia: SIP/2.0/UDP %s;branch=z9hG4bK-reinv7\nCSeq: 7 INVITE\n"+
		"Contact: <sip:bob@%s>\nContent-Length: 0\n\n", head, phone.addr(), phone.addr()))
	for {
		if res := phone.final(); res.CSeq().SeqNo == 7 {
			if res.StatusCode != 200 {
				t.Fatalf("re-INVITE with CSeq 7 answered %d %s, want 200", res.StatusCode, res.Reason)
			}
			break
		}
	}
	phone.write(h.udp(), fmt.Sprintf("ACK %sVia: SIP/2.0/UDP %s;branch=z9hG4bK-reack7\nCSeq: 7 ACK\nContent-Length: 0\n\n",
		head, phone.addr()))
	phone.write(h.udp(), bye(6))
	if res := answer(6); res.StatusCode != 500 {
		t.Fatalf("BYE with CSeq 6 after the re-INVITE's 7 answered %d %s, want 500", res.StatusCode, res.Reason)
	}
	phone.write(h.udp(), bye(6)) // a retransmission: refused again
	if res := answer(6); res.StatusCode != 500 {
		t.Fatalf("retransmitted BYE with CSeq 6 answered %d %s, want 500", res.StatusCode, res.Reason)
	}
	stays("BYE 6")

	phone.write(h.udp(), bye(8))
	if res := answer(8); res.StatusCode != 200 {
		t.Fatalf("BYE with CSeq 8 answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	h.events.waitKind(t, event.SessionEnded)
	phone.write(h.udp(), bye(8)) // a retransmission: its 200 again, from the recent-request memory
	if res := answer(8); res.StatusCode != 200 {
		t.Fatalf("retransmitted BYE with CSeq 8 answered %d %s, want 200", res.StatusCode, res.Reason)
	}
}

// mLines are the m= lines of an SDP body, in order.
func mLines(body []byte) []string {
	var out []string
	for _, l := range strings.Split(string(body), "\n") {
		if l = strings.TrimRight(l, "\r"); strings.HasPrefix(l, "m=") {
			out = append(out, l)
		}
	}
	return out
}

// An offer with other media besides m=message (audio first, say, or a second chat stream) gets an answer with
// exactly its m= lines, in its order, each one the gateway does not take rejected with port 0 (RFC 3264 §6):
// an answer with the m=message line alone is one a strict offerer refuses, its media lines not matching. A
// re-offer is answered the same way, and the gateway's own offer (to a re-INVITE without SDP) keeps the lines
// too (RFC 3264 §8: a new offer has no fewer m= lines than the last).
func TestOfferWithOtherMediaAnsweredLineForLine(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n" +
		"m=message 9 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://127.0.0.1:9/never;tcp\r\na=setup:active\r\n" +
		"m=message 10 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://127.0.0.1:10/other;tcp\r\n"
	ruri := "sip:alice@" + h.udp()
	head := fmt.Sprintf("From: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: mlines-%s\n", phone.addr())
	res := phone.exchange(h.udp(), fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ml;rport\n"+
		"Max-Forwards: 70\n%sTo: <%s>\nCSeq: 5 INVITE\nContact: <sip:bob@%s>\nContent-Type: application/sdp\n"+
		"Content-Length: %d\n\n%s", ruri, phone.addr(), head, ruri, phone.addr(), len(offer), offer))
	if res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d %s", res.StatusCode, res.Reason)
	}
	check := func(what string, body []byte, wantVersion string) {
		t.Helper()
		got := mLines(body)
		if len(got) != 3 || got[0] != "m=audio 0 RTP/AVP 0 8" || !strings.HasPrefix(got[1], "m=message ") ||
			strings.HasPrefix(got[1], "m=message 0 ") || got[2] != "m=message 0 TCP/MSRP *" {
			t.Fatalf("%s has m= lines %q, want the offer's three: audio and the second chat rejected (port 0)\n%s", what, got, body)
		}
		if !strings.Contains(string(body), "a=path:msrp://") || !strings.Contains(string(body), "a=setup:passive") {
			t.Fatalf("%s lacks the chat stream's attributes:\n%s", what, body)
		}
		if wantVersion != "" {
			if o := strings.Fields(strings.SplitN(strings.SplitN(string(body), "o=", 2)[1], "\r\n", 2)[0]); o[2] != wantVersion {
				t.Fatalf("%s o= version %s, want %s", what, o[2], wantVersion)
			}
		}
	}
	check("the answer", res.Body(), "")
	phone.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-mlack\nMax-Forwards: 70\n%s%s\n"+
		"CSeq: 5 ACK\nContent-Length: 0\n\n", res.Contact().Address.String(), phone.addr(), head, res.To().String()))

	// A re-offer with the same lines: the same answer, its version unchanged (RFC 3264 §8).
	version := strings.Fields(strings.SplitN(strings.SplitN(string(res.Body()), "o=", 2)[1], "\r\n", 2)[0])[2]
	inDialog := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\n%s%s\n", res.Contact().Address.String(), head, res.To().String())
	re := phone.exchange(h.udp(), "INVITE "+inDialog+"Via: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bK-mlre\n"+
		fmt.Sprintf("CSeq: 6 INVITE\nContact: <sip:bob@%s>\nContent-Type: application/sdp\nContent-Length: %d\n\n%s", phone.addr(), len(offer), offer))
	if re.StatusCode != 200 {
		t.Fatalf("re-INVITE answered %d %s", re.StatusCode, re.Reason)
	}
	check("the answer to the re-offer", re.Body(), version)
	phone.write(h.udp(), "ACK "+inDialog+"Via: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bK-mlreack\nCSeq: 6 ACK\nContent-Length: 0\n\n")

	// A re-INVITE without SDP: our offer keeps the three lines.
	re = phone.exchange(h.udp(), "INVITE "+inDialog+"Via: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bK-mlre2\n"+
		fmt.Sprintf("CSeq: 7 INVITE\nContact: <sip:bob@%s>\nContent-Length: 0\n\n", phone.addr()))
	if re.StatusCode != 200 {
		t.Fatalf("re-INVITE without SDP answered %d %s", re.StatusCode, re.Reason)
	}
	if got := mLines(re.Body()); len(got) != 3 || got[0] != "m=audio 0 RTP/AVP 0 8" || got[2] != "m=message 0 TCP/MSRP *" {
		t.Fatalf("our offer in the 200 to a re-INVITE without SDP has m= lines %q, want the session's three\n%s", got, re.Body())
	}
}

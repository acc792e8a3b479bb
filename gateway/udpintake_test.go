package gateway

import (
	"fmt"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// MESSAGEs over UDP get no sipgo server transaction (udpintake.go; over TCP it ends once answered): a
// retransmission (same Via branch, RFC 3261 §17.2.2) is answered from the gateway's memory of recent
// requests with the same response, and makes no second SEND.
func TestRetransmissionAfterAnswer(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "retx-bob")
	alice := newRawUDP(t)
	from := "sip:retx-alice@" + alice.addr()

	t.Run("delivered", func(t *testing.T) {
		raw := message(bob.URI, alice.addr(), "z9hG4bKretx1", from, "retx-call-1", "text/plain", "only once")
		first := alice.exchange(h.udp(), raw)
		cs := bob.WaitInvite()
		if m := cs.Recv(); string(m.Body) != "only once" {
			t.Fatalf("got %q", m.Body)
		}
		again := alice.exchange(h.udp(), raw)
		if again.StatusCode != first.StatusCode || again.Reason != first.Reason {
			t.Fatalf("retransmission answered %d %s, first %d %s", again.StatusCode, again.Reason, first.StatusCode, first.Reason)
		}
		if b, _ := again.Via().Params.Get("branch"); b != "z9hG4bKretx1" {
			t.Fatalf("answer to the retransmission has branch %q", b)
		}
		next := alice.exchange(h.udp(), message(bob.URI, alice.addr(), "z9hG4bKretx2", from, "retx-call-1b", "text/plain", "next"))
		if next.StatusCode/100 != 2 {
			t.Fatalf("next MESSAGE: %d", next.StatusCode)
		}
		if m := cs.Recv(); string(m.Body) != "next" {
			t.Fatalf("after the retransmission the peer got %q, want \"next\" (a second SEND was made)", m.Body)
		}
	})

	t.Run("refused", func(t *testing.T) {
		raw := message(bob.URI, alice.addr(), "z9hG4bKretx3", from, "retx-call-2", "text/plain", "")
		first := alice.exchange(h.udp(), raw)
		if first.StatusCode != 400 || first.GetHeader("Warning") == nil {
			t.Fatalf("empty MESSAGE answered %d with Warning %v, want 400 with a Warning", first.StatusCode, first.GetHeader("Warning"))
		}
		again := alice.exchange(h.udp(), raw)
		if again.StatusCode != 400 || again.GetHeader("Warning") == nil || again.GetHeader("Warning").Value() != first.GetHeader("Warning").Value() {
			t.Fatalf("retransmission answered %d with Warning %v, want the first answer again", again.StatusCode, again.GetHeader("Warning"))
		}
	})
}

// A response to a MESSAGE taken from a UDP listener goes where RFC 3261 §18.2.2 and RFC 3581 say: to the
// source address and port when the Via asks for rport, else to the Via's sent-by port (the source's own or
// another) — and out of the
// listener's own socket either way.
func TestUDPResponseAddress(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "addr-bob")
	sender := newRawUDP(t)
	other := newRawUDP(t) // the port the Via names
	expect := func(u *rawUDP, callID string) {
		t.Helper()
		msg, from := u.read()
		if from.String() != h.udp() {
			t.Fatalf("response came from %s, want the listener %s", from, h.udp())
		}
		if res, ok := msg.(*sip.Response); !ok || res.CallID().Value() != callID {
			t.Fatalf("got %v, want the response to %s", msg, callID)
		}
	}
	from := "sip:addr-alice@127.0.0.1"
	sender.write(h.udp(), message(bob.URI, other.addr(), "z9hG4bKaddr1", from, "addr-via-port", "text/plain", "hello"))
	expect(other, "addr-via-port")
	bob.WaitInvite()
	sender.write(h.udp(), message(bob.URI, other.addr()+";rport", "z9hG4bKaddr2", from, "addr-rport", "text/plain", "hello"))
	expect(sender, "addr-rport")
	// The Via naming the port the request came from (the usual case, answered to the address as read), then
	// another port again.
	sender.write(h.udp(), message(bob.URI, sender.addr(), "z9hG4bKaddr3", from, "addr-own-port", "text/plain", "hello"))
	expect(sender, "addr-own-port")
	sender.write(h.udp(), message(bob.URI, other.addr(), "z9hG4bKaddr4", from, "addr-via-port-2", "text/plain", "hello"))
	expect(other, "addr-via-port-2")
}

// A BYE's transaction is not kept after its 200 (recent.go): a retransmission of it, arriving when the
// dialog is gone, is answered 200 again, not 481; a BYE for a dialog that never existed still gets 481.
func TestByeRetransmission(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "bye-bob")
	cs := bob.Call(h.udp(), "sip:bye-alice@127.0.0.1", "active")
	inv, res := cs.ClientDialog().InviteRequest, cs.ClientDialog().InviteResponse
	peer := newRawUDP(t)
	bye := func(callID, toTag string) string {
		return fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKbye-%s;rport\nMax-Forwards: 70\n"+
			"From: %s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: %d BYE\nContent-Length: 0\n\n",
			res.Contact().Address.String(), peer.addr(), callID, inv.From().Value(), inv.To().Address.String(), toTag, callID,
			inv.CSeq().SeqNo+1) // after the INVITE's: a lower one is out of order (500)
	}
	toTag, _ := res.To().Params.Get("tag")
	raw := bye(inv.CallID().Value(), toTag)
	if r := peer.exchange(h.udp(), raw); r.StatusCode != 200 {
		t.Fatalf("BYE answered %d", r.StatusCode)
	}
	if r := peer.exchange(h.udp(), raw); r.StatusCode != 200 {
		t.Fatalf("retransmitted BYE answered %d, want 200 again", r.StatusCode)
	}
	if r := peer.exchange(h.udp(), bye("never-existed", "nosuchtag")); r.StatusCode != 481 {
		t.Fatalf("BYE for an unknown dialog answered %d, want 481", r.StatusCode)
	}
}

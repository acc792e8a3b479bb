package gateway

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// MESSAGEs over UDP get no sipgo server transaction (udpintake.go; over TCP it ends once answered): a
// retransmission (same Via branch, RFC 3261 §17.2.2) is answered from the gateway's memory of recent
// requests with the same response, and makes no second SEND.
func TestRetransmissionAfterAnswer(t *testing.T) {
	h := newHarness(t, nil)
	bob := newClient(t, "retx-bob")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	gw, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	self := pc.LocalAddr().String()
	message := func(branch, callID, ctype, body string) []byte {
		return []byte(strings.ReplaceAll(fmt.Sprintf("MESSAGE %s SIP/2.0\n"+
			"Via: SIP/2.0/UDP %s;branch=%s\nMax-Forwards: 70\n"+
			"From: <sip:retx-alice@%s>;tag=a1\nTo: <%s>\nCall-ID: %s\nCSeq: 1 MESSAGE\n"+
			"Content-Type: %s\nContent-Length: %d\n\n%s", bob.uri, self, branch, self, bob.uri, callID, ctype, len(body), body), "\n", "\r\n"))
	}
	exchange := func(raw []byte) *sip.Response {
		t.Helper()
		if _, err := pc.WriteTo(raw, gw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		for {
			pc.SetReadDeadline(time.Now().Add(waitFor))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
			if err != nil {
				t.Fatal(err)
			}
			if res, ok := msg.(*sip.Response); ok && res.StatusCode >= 200 {
				return res
			}
		}
	}

	t.Run("delivered", func(t *testing.T) {
		raw := message("z9hG4bKretx1", "retx-call-1", "text/plain", "only once")
		first := exchange(raw)
		cs := bob.waitInvite()
		if m := cs.recv(); string(m.Body) != "only once" {
			t.Fatalf("got %q", m.Body)
		}
		again := exchange(raw)
		if again.StatusCode != first.StatusCode || again.Reason != first.Reason {
			t.Fatalf("retransmission answered %d %s, first %d %s", again.StatusCode, again.Reason, first.StatusCode, first.Reason)
		}
		if b, _ := again.Via().Params.Get("branch"); b != "z9hG4bKretx1" {
			t.Fatalf("answer to the retransmission has branch %q", b)
		}
		next := exchange(message("z9hG4bKretx2", "retx-call-1b", "text/plain", "next"))
		if next.StatusCode/100 != 2 {
			t.Fatalf("next MESSAGE: %d", next.StatusCode)
		}
		if m := cs.recv(); string(m.Body) != "next" {
			t.Fatalf("after the retransmission the peer got %q, want \"next\" (a second SEND was made)", m.Body)
		}
	})

	t.Run("refused", func(t *testing.T) {
		raw := message("z9hG4bKretx3", "retx-call-2", "text/plain", "")
		first := exchange(raw)
		if first.StatusCode != 400 || first.GetHeader("Warning") == nil {
			t.Fatalf("empty MESSAGE answered %d with Warning %v, want 400 with a Warning", first.StatusCode, first.GetHeader("Warning"))
		}
		again := exchange(raw)
		if again.StatusCode != 400 || again.GetHeader("Warning") == nil || again.GetHeader("Warning").Value() != first.GetHeader("Warning").Value() {
			t.Fatalf("retransmission answered %d with Warning %v, want the first answer again", again.StatusCode, again.GetHeader("Warning"))
		}
	})
}

// A response to a MESSAGE taken from a UDP listener goes where RFC 3261 §18.2.2 and RFC 3581 say: to the
// source address and port when the Via asks for rport, else to the Via's sent-by port — and out of the
// listener's own socket either way.
func TestUDPResponseAddress(t *testing.T) {
	h := newHarness(t, nil)
	bob := newClient(t, "addr-bob")
	sender, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	other, err := net.ListenPacket("udp", "127.0.0.1:0") // the port the Via names
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	gw, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	otherPort := other.LocalAddr().(*net.UDPAddr).Port
	send := func(via, callID string) {
		body := "hello"
		raw := strings.ReplaceAll(fmt.Sprintf("MESSAGE %s SIP/2.0\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bK%s\nMax-Forwards: 70\n"+
			"From: <sip:addr-alice@127.0.0.1>;tag=a1\nTo: <%s>\nCall-ID: %s\nCSeq: 1 MESSAGE\n"+
			"Content-Type: text/plain\nContent-Length: %d\n\n%s", bob.uri, via, callID, bob.uri, callID, len(body), body), "\n", "\r\n")
		if _, err := sender.WriteTo([]byte(raw), gw); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(pc net.PacketConn, callID string) {
		t.Helper()
		buf := make([]byte, 65535)
		pc.SetReadDeadline(time.Now().Add(waitFor))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no response for %s on %s: %v", callID, pc.LocalAddr(), err)
		}
		if from.String() != h.udp() {
			t.Fatalf("response came from %s, want the listener %s", from, h.udp())
		}
		msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := msg.(*sip.Response); !ok || res.CallID().Value() != callID {
			t.Fatalf("got %q, want the response to %s", buf[:min(n, 60)], callID)
		}
	}

	send(fmt.Sprintf("127.0.0.1:%d", otherPort), "addr-via-port")
	expect(other, "addr-via-port")
	bob.waitInvite()
	send(fmt.Sprintf("127.0.0.1:%d;rport", otherPort), "addr-rport")
	expect(sender, "addr-rport")
}

// A BYE's transaction is not kept after its 200 (recent.go): a retransmission of it, arriving when the
// dialog is gone, is answered 200 again, not 481; a BYE for a dialog that never existed still gets 481.
func TestByeRetransmission(t *testing.T) {
	h := newHarness(t, nil)
	bob := newClient(t, "bye-bob")
	cs, err := bob.invite(h.udp(), "sip:bye-alice@127.0.0.1", "active")
	if err != nil {
		t.Fatal(err)
	}
	inv, res := cs.uac.InviteRequest, cs.uac.InviteResponse
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	gw, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	bye := func(callID, toTag string) []byte {
		return []byte(strings.ReplaceAll(fmt.Sprintf("BYE %s SIP/2.0\n"+
			"Via: SIP/2.0/UDP %s;branch=z9hG4bKbye-%s;rport\nMax-Forwards: 70\n"+
			"From: %s\nTo: <%s>;tag=%s\nCall-ID: %s\nCSeq: 2 BYE\nContent-Length: 0\n\n",
			res.Contact().Address.String(), pc.LocalAddr(), callID, inv.From().Value(), inv.To().Address.String(), toTag, callID), "\n", "\r\n"))
	}
	exchange := func(raw []byte) int {
		t.Helper()
		if _, err := pc.WriteTo(raw, gw); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		pc.SetReadDeadline(time.Now().Add(waitFor))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
		if err != nil {
			t.Fatal(err)
		}
		return msg.(*sip.Response).StatusCode
	}
	toTag, _ := res.To().Params.Get("tag")
	raw := bye(inv.CallID().Value(), toTag)
	if code := exchange(raw); code != 200 {
		t.Fatalf("BYE answered %d", code)
	}
	if code := exchange(raw); code != 200 {
		t.Fatalf("retransmitted BYE answered %d, want 200 again", code)
	}
	if code := exchange(bye("never-existed", "nosuchtag")); code != 481 {
		t.Fatalf("BYE for an unknown dialog answered %d, want 481", code)
	}
}

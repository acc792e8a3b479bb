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

// The gateway ends sipgo's server transaction as soon as a MESSAGE is answered and answers a later UDP
// retransmission (same Via branch, RFC 3261 §17.2.2) from its own memory of recent requests: the same
// response, and no second SEND.
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

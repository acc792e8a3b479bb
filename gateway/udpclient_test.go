package gateway

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
)

// rawPhone is a page-mode peer on a bare UDP socket: the test decides what it answers, and when.
type rawPhone struct {
	t   *testing.T
	pc  net.PacketConn
	uri string
}

func newRawPhone(t *testing.T, user string) *rawPhone {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &rawPhone{t: t, pc: pc, uri: "sip:" + user + "@" + pc.LocalAddr().String()}
}

// read returns the next request and where it came from.
func (p *rawPhone) read() (*sip.Request, net.Addr) {
	p.t.Helper()
	buf := make([]byte, 65535)
	p.pc.SetReadDeadline(time.Now().Add(waitFor))
	n, from, err := p.pc.ReadFrom(buf)
	if err != nil {
		p.t.Fatalf("raw phone: %v", err)
	}
	msg, err := sip.ParseMessage(bytes.Clone(buf[:n]))
	if err != nil {
		p.t.Fatal(err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		p.t.Fatalf("raw phone got a response: %s", buf[:n])
	}
	return req, from
}

func (p *rawPhone) answer(req *sip.Request, to net.Addr, code int, reason string) {
	p.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if _, err := p.pc.WriteTo([]byte(res.String()), to); err != nil {
		p.t.Fatal(err)
	}
}

// A generated MESSAGE over UDP is retransmitted (Timer E) until the page-mode side answers; a provisional
// response is taken, the final one ends the transaction, and the message counts as delivered once. A late
// copy of the final response changes nothing.
func TestGeneratedMessageRetransmitted(t *testing.T) {
	h := newHarness(t, nil)
	alice := newRawPhone(t, "retx-alice")
	bob := newClient(t, "retx-bob")
	cs, err := bob.invite(h.udp(), alice.uri, "active")
	if err != nil {
		t.Fatal(err)
	}
	go cs.sendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("say it again"), SuccessReport: true})

	first, from := alice.read()
	branch, _ := first.Via().Params.Get("branch")
	again, _ := alice.read() // Timer E: T1 later
	if b, _ := again.Via().Params.Get("branch"); b != branch || string(again.Body()) != "say it again" {
		t.Fatalf("retransmission has branch %q body %q, want branch %q and the same body", b, again.Body(), branch)
	}
	alice.answer(again, from, 180, "Ringing")
	alice.answer(again, from, 200, "OK")
	alice.answer(again, from, 200, "OK") // a late copy

	if rep := cs.report(); rep.StatusCode != 200 {
		t.Fatalf("REPORT %d %s, want the success report", rep.StatusCode, rep.Comment)
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP || e.Code != 200 {
		t.Fatalf("delivery counted as %s %d", e.Direction, e.Code)
	}
	// Answered: no more retransmissions.
	alice.pc.SetReadDeadline(time.Now().Add(2 * sip.T1))
	if n, _, err := alice.pc.ReadFrom(make([]byte, 65535)); err == nil {
		t.Fatalf("a datagram after the final response (%d bytes): the transaction kept retransmitting", n)
	}
}

package gateway

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
)

func (u *rawUDP) answer(req *sip.Request, to net.Addr, code int, reason string) {
	u.t.Helper()
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if _, err := u.pc.WriteTo([]byte(res.String()), to); err != nil {
		u.t.Fatal(err)
	}
}

// request returns the next request and where it came from.
func (u *rawUDP) request() (*sip.Request, net.Addr) {
	u.t.Helper()
	msg, from := u.read()
	req, ok := msg.(*sip.Request)
	if !ok {
		u.t.Fatalf("raw peer got a response: %v", msg)
	}
	return req, from
}

// A generated MESSAGE over UDP is retransmitted (Timer E) until the page-mode side answers; a provisional
// response is taken, the final one ends the transaction, and the message counts as delivered once. A late
// copy of the final response changes nothing.
func TestGeneratedMessageRetransmitted(t *testing.T) {
	h := newHarness(t, nil)
	alice := newRawUDP(t)
	bob := testpeer.NewClient(t, "retx-bob")
	cs := bob.Call(h.udp(), "sip:retx-alice@"+alice.addr(), "active")
	go cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("say it again"), SuccessReport: true})

	first, from := alice.request()
	// RFC 3261 §8.1.1: the headers a UAC must send, the gateway's one Via first, asking for rport.
	if h := first.Headers(); len(h) == 0 || h[0].Name() != "Via" || len(first.GetHeaders("Via")) != 1 {
		t.Errorf("headers %v: want one Via, first", h)
	}
	if v := first.Via(); v.Transport != "UDP" || !v.Params.Has("rport") {
		t.Errorf("Via %s: want UDP with rport", v.Value())
	}
	if c := first.CSeq(); c == nil || c.MethodName != sip.MESSAGE || c.SeqNo > 0x7FFF {
		t.Errorf("CSeq %v", c)
	}
	if mf := first.MaxForwards(); mf == nil || mf.Val() != 70 {
		t.Errorf("Max-Forwards %v, want 70", mf)
	}
	branch, _ := first.Via().Params.Get("branch")
	again, _ := alice.request() // Timer E: T1 later
	if b, _ := again.Via().Params.Get("branch"); b != branch || string(again.Body()) != "say it again" {
		t.Fatalf("retransmission has branch %q body %q, want branch %q and the same body", b, again.Body(), branch)
	}
	alice.answer(again, from, 180, "Ringing")
	alice.answer(again, from, 200, "OK")
	alice.answer(again, from, 200, "OK") // a late copy

	if rep := cs.Report(); rep.StatusCode != 200 {
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

// An answer is taken by its Via and status alone: a phone's 200 whose From, To or Contact sipgo cannot parse
// still delivers the message. (Parsed in full, such an answer failed to parse and was dropped: the MESSAGE was
// retransmitted until Timer F and reported as a 408 failure though the phone had it.)
func TestAnswerWithUnparsableHeadersDelivers(t *testing.T) {
	h := newHarness(t, nil)
	alice := newRawUDP(t)
	bob := testpeer.NewClient(t, "odd-answer-bob")
	cs := bob.Call(h.udp(), "sip:odd-answer-alice@"+alice.addr(), "active")
	go cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("hi"), SuccessReport: true})

	req, from := alice.request()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@host:port>")) // a port that is not a number
	raw := strings.Replace(res.String(), "To: ", "To: \"unterminated ", 1)
	if _, err := sip.NewParser().ParseSIP([]byte(raw)); err == nil {
		t.Fatal("sipgo parses the odd answer: the test needs one it cannot")
	}
	if _, err := alice.pc.WriteTo([]byte(raw), from); err != nil {
		t.Fatal(err)
	}
	if rep := cs.Report(); rep.StatusCode != 200 {
		t.Fatalf("REPORT %d %s, want the success report", rep.StatusCode, rep.Comment)
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP || e.Code != 200 {
		t.Fatalf("delivery counted as %s %d", e.Direction, e.Code)
	}
}

// writeRequest writes the bytes sipgo's String writes, for generated MESSAGEs of every shape the gateway
// builds (Route to an outbound proxy, IPv6, URI parameters, a display name, a body or none).
func TestWriteRequestMatchesSipgo(t *testing.T) {
	for _, tc := range []struct{ name, ruri, route, body string }{
		{"plain", "sip:bob@127.0.0.2:5062", "", "hello"},
		{"outbound proxy", "sip:bob@127.0.0.2:5062;transport=udp", "sip:127.0.0.3;lr", "hello"},
		{"IPv6, no body", "sip:bob@[2001:db8::2]:5060", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ruri, from sip.Uri
			if err := sip.ParseUri(tc.ruri, &ruri); err != nil {
				t.Fatal(err)
			}
			if err := sip.ParseUri("sip:alice@127.0.0.1", &from); err != nil {
				t.Fatal(err)
			}
			req := sip.NewRequest(sip.MESSAGE, ruri)
			req.AppendHeader(&sip.FromHeader{DisplayName: "Alice A", Address: from, Params: sip.HeaderParams{{K: "tag", V: "t1"}}})
			req.AppendHeader(&sip.ToHeader{Address: ruri})
			cid := sip.CallIDHeader("c1@127.0.0.1")
			req.AppendHeader(&cid)
			req.AppendHeader(&sip.CSeqHeader{SeqNo: 7, MethodName: sip.MESSAGE})
			mf := sip.MaxForwardsHeader(70)
			req.AppendHeader(&mf)
			req.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
				Host: "127.0.0.1", Port: 5060, Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK.1"}, {K: "rport"}}})
			if tc.route != "" {
				var r sip.Uri
				if err := sip.ParseUri(tc.route, &r); err != nil {
					t.Fatal(err)
				}
				req.PrependHeader(&sip.RouteHeader{Address: r})
			}
			if tc.body != "" {
				req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
				req.SetBody([]byte(tc.body))
			} else {
				cl := sip.ContentLengthHeader(0)
				req.AppendHeader(&cl)
			}
			var b bytes.Buffer
			writeRequest(&b, req)
			if want := req.String(); b.String() != want {
				t.Errorf("writeRequest:\n%q\nsipgo:\n%q", b.String(), want)
			}
		})
	}
}

// The gateway's own requests over UDP leave from its SIP listener, as its Via and Contact say: the INVITE of
// a MESSAGE-first setup to a peer it never heard from, and the BYE that ends the session. A socket sipgo
// opened for the destination would have another port (and stay open).
func TestRequestsLeaveFromListener(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode >= 300 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	cs := bob.WaitInvite()
	if cs.InviteSource != h.udp() {
		t.Fatalf("INVITE came from %s, want the gateway's listener %s", cs.InviteSource, h.udp())
	}
	cs.Recv()
	list := h.gw.Sessions()
	if len(list) != 1 || !h.gw.EndSession(list[0].Key) {
		t.Fatalf("sessions %+v: want one to end", list)
	}
	if from := cs.ByeSource(); from != h.udp() {
		t.Fatalf("BYE came from %s, want the gateway's listener %s", from, h.udp())
	}
}

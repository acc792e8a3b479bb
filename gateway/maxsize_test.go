package gateway

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// RFC 4975 §8.6: a peer's SDP a=max-size is the largest message it is willing to receive. The gateway checks
// the body it would send (CPIM included) against it; a larger message is not sent and fails as the SEND's 413
// would (SPEC §5): 413 in wait mode, with a Warning saying why, else a failure notification.

func waitMode(c *config.Config) {
	c.Gateway.Message.Reply = "wait"
	c.Gateway.Message.ReplyWait = 8 * time.Second
}

// maxSize sets the a=max-size of every SDP a client sends.
func maxSize(n int64) func(*sdp.Media) { return func(m *sdp.Media) { m.MaxSize = n } }

func TestPeerMaxSizeRefusesLargerMessage(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, waitMode, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.EditMedia(maxSize(64))
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode != 200 {
		t.Fatalf("first MESSAGE answered %d %s", res.StatusCode, res.Reason)
	}
	cs := bob.WaitInvite()
	cs.Recv()

	at := strings.Repeat("a", 64)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", at); res.StatusCode != 200 {
		t.Fatalf("MESSAGE of exactly a=max-size answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got := string(cs.Recv().Body); got != at {
		t.Fatalf("got %q", got)
	}

	res := alice.Send(h.udp(), bob.URI, "text/plain", strings.Repeat("b", 65))
	w := res.GetHeader("Warning")
	if res.StatusCode != 413 || w == nil || !strings.Contains(w.Value(), "65 bytes") || !strings.Contains(w.Value(), "a=max-size 64") {
		t.Fatalf("MESSAGE over a=max-size answered %d %s, Warning %v; want 413 with a Warning saying why", res.StatusCode, res.Reason, w)
	}
	if m, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the peer got a message over its a=max-size: %d bytes", len(m.Body))
	}
	l := logs.wait(t, "message to MSRP failed", map[string]string{"code": "413", "key": "", "call_id": "", "msrp_session_id": ""})
	if !strings.Contains(l.attrs["why"], "a=max-size 64") {
		t.Fatalf("log line %v does not say why", l.attrs)
	}
	if e := h.events.waitKind(t, event.MessageFailed); e.Code != 413 || e.Direction != event.ToMSRP {
		t.Fatalf("event %+v, want message_failed 413 to MSRP", e)
	}

	// The session carries on; the 413 was the MESSAGE's answer, so no notification follows.
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "after"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the refused one answered %d %s", res.StatusCode, res.Reason)
	}
	if got := string(cs.Recv().Body); got != "after" {
		t.Fatalf("got %q", got)
	}
	alice.Quiet(200 * time.Millisecond)
	if a := waitAccounted(t, h, 4, 0); a.failed[event.ToMSRP] != 1 {
		t.Fatalf("%d messages to MSRP failed, want 1", a.failed[event.ToMSRP])
	}
}

// What is checked is the body as sent: CPIM wrapping (towards a peer that lists message/cpim first) makes a
// message that fits a=max-size on its own too large. Here the peer's a=max-size comes in its offer (session
// first).
func TestPeerMaxSizeCountsCPIM(t *testing.T) {
	h := newHarness(t, waitMode)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	const limit = 250
	bob.EditMedia(maxSize(limit))
	cs := bob.Call(h.udp(), alice.URI, "actpass")

	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hi"); res.StatusCode != 200 {
		t.Fatalf("small MESSAGE answered %d %s", res.StatusCode, res.Reason)
	}
	got := cs.Recv()
	if got.ContentType != "message/cpim" {
		t.Fatalf("the peer got %s, want message/cpim", got.ContentType)
	}
	body := strings.Repeat("c", 200)
	if overhead := len(got.Body) - len("hi"); len(body) > limit || len(body)+overhead <= limit {
		t.Fatalf("test premise: %d bytes must fit a=max-size %d only unwrapped (CPIM adds %d)", len(body), limit, overhead)
	}
	res := alice.Send(h.udp(), bob.URI, "text/plain", body)
	if w := res.GetHeader("Warning"); res.StatusCode != 413 || w == nil || !strings.Contains(w.Value(), "CPIM") {
		t.Fatalf("MESSAGE too large once wrapped answered %d %s, Warning %v; want 413 naming CPIM", res.StatusCode, res.Reason, w)
	}
	if m, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the peer got a message over its a=max-size: %d bytes", len(m.Body))
	}
}

// MESSAGEs queued while the session is set up, before the peer's SDP says its a=max-size, are checked when the
// session comes up: the one too large fails and is reported (413 in wait mode, a notification after 202 in
// accept mode), the others are delivered in order, nothing is lost.
func TestPeerMaxSizeQueuedDuringSetup(t *testing.T) {
	for _, mode := range []string{"wait", "accept"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) {
				waitMode(c)
				c.Gateway.Message.Reply = mode
			})
			alice := testpeer.NewPhone(t, "alice")
			bob := newRawUDP(t) // answers the gateway's INVITE when the test says
			bobURI := "sip:bob@" + bob.addr()
			big := strings.Repeat("x", 65)
			bodies := []string{"small one", big, "small two"}

			first := make(chan *sip.Response, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				defer cancel()
				res, err := alice.TrySend(ctx, h.udp(), bobURI, "text/plain", bodies[0])
				if err != nil {
					t.Errorf("first MESSAGE: %v", err)
				}
				first <- res
			}()
			m, gw := bob.read()
			inv, ok := m.(*sip.Request)
			if !ok || !inv.IsInvite() {
				t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
			}
			inv.SetSource(gw.String())
			bob.send(gw, sip.NewResponseFromRequest(inv, 180, "Ringing", nil))
			resc := []<-chan *sip.Response{first}
			for _, b := range bodies[1:] {
				resc = append(resc, sendTaken(t, h, alice, bobURI, b))
			}
			if list := h.gw.Sessions(); len(list) != 1 || list[0].State != "setting-up" || list[0].MessagesToMSRP != 3 {
				t.Fatalf("sessions %+v, want one setting up with the 3 MESSAGEs queued", list)
			}

			cs := answerWithMaxSize(t, bob, inv, gw, 64)
			for _, want := range []string{"small one", "small two"} {
				if got := string(cs.Recv().Body); got != want {
					t.Fatalf("the peer got %q, want %q", got, want)
				}
			}
			for i, rc := range resc {
				res := finalResponse(t, rc)
				want := map[string]int{"wait": 200, "accept": 202}[mode]
				if mode == "wait" && bodies[i] == big {
					want = 413
				}
				if res.StatusCode != want {
					t.Fatalf("MESSAGE %q answered %d %s, want %d", bodies[i][:min(len(bodies[i]), 10)], res.StatusCode, res.Reason, want)
				}
				if want == 413 && res.GetHeader("Warning") == nil {
					t.Fatal("413 without a Warning")
				}
			}
			if mode == "accept" {
				n := alice.Recv()
				if body := string(n.Body()); !strings.Contains(body, "413 Message too large for the peer") || !strings.Contains(body, "xxxxx") {
					t.Fatalf("failure notification %q", body)
				}
			}
			alice.Quiet(200 * time.Millisecond)
			if a := waitAccounted(t, h, 3, 0); a.failed[event.ToMSRP] != 1 {
				t.Fatalf("%d messages to MSRP failed, want 1", a.failed[event.ToMSRP])
			}
			if m, ok := cs.TryRecv(200 * time.Millisecond); ok {
				t.Fatalf("the peer got a message over its a=max-size: %d bytes", len(m.Body))
			}
			endHeld(t, h, bob, inv, gw)
		})
	}
}

// answerWithMaxSize answers the gateway's INVITE inv 200 for the raw peer bob, with the SDP of a session on a
// test client of its own that says a=max-size n and a=setup:passive (the gateway connects), and returns that
// session once the gateway bound it.
func answerWithMaxSize(t *testing.T, bob *rawUDP, inv *sip.Request, gw net.Addr, n int64) *testpeer.ClientSession {
	t.Helper()
	client := testpeer.NewClient(t, "bob-msrp")
	cs := client.NewSession()
	cs.MSRP.SetPeerPath(sdpPath(t, inv.Body()))
	m := client.Media(cs, sdp.SetupPassive)
	m.MaxSize = n
	ok := sip.NewSDPResponseFromRequest(inv, m.Marshal(1, 1))
	ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: bob.pc.LocalAddr().(*net.UDPAddr).Port}})
	bob.send(gw, ok)
	if ack := bob.next(inv); !ack.IsAck() {
		t.Fatalf("after the 200 the peer got %s, want the ACK", ack.StartLine())
	}
	select {
	case <-cs.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway did not connect to the answer's path")
	}
	return cs
}

// endHeld ends the only session, whose INVITE inv the raw peer bob answered, and answers the gateway's BYE.
func endHeld(t *testing.T, h *harness, bob *rawUDP, inv *sip.Request, gw net.Addr) {
	t.Helper()
	list := h.gw.Sessions()
	if len(list) != 1 || !h.gw.EndSession(list[0].Key) {
		t.Fatalf("sessions %+v, want one to end", list)
	}
	bye := bob.next(inv)
	if bye.Method != sip.BYE {
		t.Fatalf("peer got %s, want the BYE", bye.StartLine())
	}
	bye.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(bye, 200, "OK", nil))
}

// The gateway's own IMDNs are held to the peer's a=max-size too: one that does not fit is not sent, and the
// log says why.
func TestPeerMaxSizeHoldsIMDN(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	bob.EditMedia(maxSize(200))
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	w := cpim.Wrap("text/plain", []byte("hi"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
		IMDNMessageID: "imdn-big", Disposition: []string{cpim.PositiveDelivery}})
	if r := cs.Send("message/cpim", string(w.Marshal())); r.StatusCode != 200 {
		t.Fatalf("CPIM SEND: %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "hi" {
		t.Fatalf("page-mode user got %q", got)
	}
	l := logs.wait(t, "IMDN not sent", map[string]string{"msrp_session_id": ""})
	if !strings.Contains(l.attrs["err"], "a=max-size 200") {
		t.Fatalf("log line %v does not say why", l.attrs)
	}
	if m, ok := cs.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the peer got %d bytes over its a=max-size", len(m.Body))
	}
}

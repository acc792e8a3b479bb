package gateway

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// SPEC §8: a request repeating a recent one's Call-ID, CSeq and From-tag (with a new Via branch, so it is no
// retransmission sipgo's transaction layer would absorb) is answered as the first was and produces no
// second SEND.
func TestRepeatedMessageIsIdempotent(t *testing.T) {
	for _, mode := range []string{"accept", "wait"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = mode })
			alice := testpeer.NewPhone(t, "idem-alice")
			bob := testpeer.NewClient(t, "idem-bob")

			req := alice.NewMessage(bob.URI, "text/plain", "only once")
			req.SetDestination(h.udp())
			first, err := doReq(alice.SIPClient(), req)
			if err != nil {
				t.Fatal(err)
			}
			cs := bob.WaitInvite()
			if m := cs.Recv(); string(m.Body) != "only once" {
				t.Fatalf("got %q", m.Body)
			}
			again := req.Clone()      // after sending: it has the Call-ID and CSeq the client filled in
			again.RemoveHeader("Via") // a new branch: a new transaction with the same Call-ID, CSeq, From-tag
			second, err := doReq(alice.SIPClient(), again)
			if err != nil {
				t.Fatal(err)
			}
			if second.StatusCode != first.StatusCode {
				t.Fatalf("repeat answered %d, first %d", second.StatusCode, first.StatusCode)
			}
			alice.Send(h.udp(), bob.URI, "text/plain", "next")
			if m := cs.Recv(); string(m.Body) != "next" {
				t.Fatalf("after the repeat the peer got %q, want \"next\" (a second SEND was made)", m.Body)
			}
		})
	}
}

// SPEC §8 for INVITE: a repeat of the INVITE that set up a session (same Call-ID, CSeq and From-tag, a new
// Via branch) gets the first's 200 again, same To-tag and SDP, and neither replaces the session nor makes a
// second one.
func TestRepeatedInviteIsIdempotent(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "idem-inv-alice")
	bob := testpeer.NewClient(t, "idem-inv-bob")
	cs := bob.Call(h.udp(), alice.URI, "active")
	first := cs.ClientDialog().InviteResponse

	again := cs.ClientDialog().InviteRequest.Clone()
	again.RemoveHeader("Via")
	res, err := doReq(bob.SIPClient(), again)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.To().Value() != first.To().Value() || string(res.Body()) != string(first.Body()) {
		t.Fatalf("repeat answered %d, To %q, SDP %q; first 200, To %q, SDP %q",
			res.StatusCode, res.To().Value(), res.Body(), first.To().Value(), first.Body())
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions after the repeat, want 1", n)
	}
	// The session is the first one, up both ways.
	if r := cs.Send("text/plain", "after the repeat"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "after the repeat" {
		t.Fatalf("alice got %q", m.Body())
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "back")
	if m := cs.Recv(); string(m.Body) != "back" {
		t.Fatalf("bob got %q", m.Body)
	}
	if n := h.events.count(event.SessionEnded); n != 0 {
		t.Fatalf("%d sessions ended", n)
	}
}

// A repeat arriving before the first INVITE is answered waits for that answer and gets it.
func TestRepeatedInviteBeforeAnswer(t *testing.T) {
	routes, err := NewTemplateRouter(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	var slow atomic.Bool
	slow.Store(true)
	router := RouterFuncs{Message: routes.RouteMessage, Invite: func(req *sip.Request) (Route, error) {
		if slow.CompareAndSwap(true, false) {
			time.Sleep(300 * time.Millisecond) // the first INVITE: its repeat arrives meanwhile
		}
		return routes.RouteInvite(req)
	}}
	h := newHarnessWith(t, nil, Options{Router: router})
	alice := testpeer.NewPhone(t, "idem-early-alice")
	bob := testpeer.NewClient(t, "idem-early-bob")
	peer := newRawUDP(t)
	offer := strings.ReplaceAll(string(inviteOffer(bob)), "\r\n", "\n")
	invite := func(branch string) string {
		return fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=%s;rport\nMax-Forwards: 70\n"+
			"From: <%s>;tag=early\nTo: <%s>\nCall-ID: idem-early-1\nCSeq: 1 INVITE\nContact: <sip:idem-early-bob@%s>\n"+
			"Content-Type: application/sdp\nContent-Length: %d\n\n%s",
			alice.URI, peer.addr(), branch, bob.URI, alice.URI, peer.addr(), len(strings.ReplaceAll(offer, "\n", "\r\n")), offer)
	}
	peer.write(h.udp(), invite("z9hG4bKearly1"))
	peer.write(h.udp(), invite("z9hG4bKearly2"))
	byBranch := map[string]*sip.Response{}
	for len(byBranch) < 2 {
		res := peer.final()
		b, _ := res.Via().Params.Get("branch")
		if byBranch[b] == nil {
			byBranch[b] = res // the 200 is retransmitted until ACKed: keep the first
		}
	}
	a, b := byBranch["z9hG4bKearly1"], byBranch["z9hG4bKearly2"]
	if a == nil || b == nil || a.StatusCode != 200 || b.StatusCode != 200 || a.To().Value() != b.To().Value() || string(a.Body()) != string(b.Body()) {
		t.Fatalf("answers differ:\n%v\n%v", a, b)
	}
	peer.write(h.udp(), fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKearlyack;rport\nMax-Forwards: 70\n"+
		"From: <%s>;tag=early\nTo: %s\nCall-ID: idem-early-1\nCSeq: 1 ACK\nContent-Length: 0\n\n",
		a.Contact().Address.String(), peer.addr(), bob.URI, a.To().Value()))
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
}

package gateway

import (
	"context"
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

// A Router's *Refusal is the answer even when the Router wrapped it in an error of its own, for MESSAGEs and
// INVITEs alike.
func TestWrappedRefusal(t *testing.T) {
	refuse := func(*sip.Request) (Route, error) {
		return Route{}, fmt.Errorf("directory lookup: %w", &Refusal{Code: 404, Reason: "Not Found", Warning: "no such user"})
	}
	h := newHarnessWith(t, nil, Options{Router: RouterFuncs{Message: refuse, Invite: refuse}})
	alice := testpeer.NewPhone(t, "wrapped-alice")
	bob := testpeer.NewClient(t, "wrapped-bob")
	check := func(what string, res *sip.Response) {
		t.Helper()
		w := res.GetHeader("Warning")
		if res.StatusCode != 404 || w == nil || !strings.Contains(w.Value(), "no such user") {
			t.Fatalf("%s answered %d %s with Warning %v, want the Refusal's 404 and Warning", what, res.StatusCode, res.Reason, w)
		}
	}
	check("MESSAGE", alice.Send(h.udp(), bob.URI, "text/plain", "hi"))
	check("INVITE", invitePeer(t, bob, h.udp(), alice.URI, "application/sdp", inviteOffer(bob)))
}

// The Accept header of a 415 names each type once, in the order of the accepted then the accepted-wrapped
// types (the defaults have text/plain and iscomposing in both).
func TestAcceptHeaderNamesTypesOnce(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "accept-bob")
	peer := newRawUDP(t)
	res := peer.exchange(h.udp(), message(bob.URI, peer.addr(), "z9hG4bKaccept1", "sip:accept-alice@127.0.0.1", "accept-1", "application/x-foo", "hi"))
	if res.StatusCode != 415 {
		t.Fatalf("answered %d %s, want 415", res.StatusCode, res.Reason)
	}
	var want []string
	seen := map[string]bool{}
	for _, ty := range append(append([]string(nil), h.cfg.Gateway.Message.AcceptTypes...), h.cfg.Gateway.Message.AcceptWrappedTypes...) {
		if !seen[ty] {
			seen[ty] = true
			want = append(want, ty)
		}
	}
	if len(want) == len(h.cfg.Gateway.Message.AcceptTypes)+len(h.cfg.Gateway.Message.AcceptWrappedTypes) {
		t.Fatalf("the default types %v have no type in both lists: the test shows nothing", want)
	}
	if a := res.GetHeader("Accept"); a == nil || a.Value() != strings.Join(want, ", ") {
		t.Fatalf("Accept %v, want %q", a, strings.Join(want, ", "))
	}
}

// A first MESSAGE refused with 415 (SPEC §4: before any peer answered, message.accept_types decides) makes
// no session: none is set up or installed for it, so no session event tells of one, nor of its end.
func TestRefusedFirstMessageStartsNoSession(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "refused-alice")
	bob := testpeer.NewClient(t, "refused-bob")
	if r := alice.Send(h.udp(), bob.URI, "application/octet-stream", "bin"); r.StatusCode != 415 {
		t.Fatalf("first MESSAGE answered %d %s, want 415", r.StatusCode, r.Reason)
	}
	for _, k := range []event.Kind{event.SessionStarted, event.SetupFailed, event.SessionEnded} {
		if n := h.events.count(k); n != 0 {
			t.Fatalf("%d %s event(s) for a session that never started, want none", n, k)
		}
	}
	if list := h.gw.Sessions(); len(list) != 0 {
		t.Fatalf("sessions %+v after the refusal, want none", list)
	}
}

// A MESSAGE refused with 415 is counted and published as a refusal, like the gateway's other refusals,
// whether it came first (message.accept_types decides) or to a session whose peer does not take its type.
func TestRefused415Counted(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "refused-alice")
	bob := testpeer.NewClient(t, "refused-bob")
	bob.SetTypes([]string{"text/plain"}, nil)
	refused := func() int {
		return h.events.countWhere(func(e event.Event) bool { return e.Kind == event.RequestRefused && e.Code == 415 })
	}
	if r := alice.Send(h.udp(), bob.URI, "application/octet-stream", "bin"); r.StatusCode != 415 {
		t.Fatalf("first MESSAGE answered %d %s, want 415", r.StatusCode, r.Reason)
	}
	if n := refused(); n != 1 {
		t.Fatalf("%d request_refused 415 for the first MESSAGE, want 1", n)
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "hello")
	bob.WaitInvite().Recv()
	if r := alice.Send(h.udp(), bob.URI, ctypeIsComposing, "<isComposing/>"); r.StatusCode != 415 {
		t.Fatalf("MESSAGE of a type the peer does not take answered %d %s, want 415", r.StatusCode, r.Reason)
	}
	if n := refused(); n != 2 {
		t.Fatalf("%d request_refused 415 after the session's refusal too, want 2", n)
	}
}

// hookTable is the in-memory table with a hook that runs once, right after the first GetOrCreate returned and
// before its caller goes on with what it found (or made): a deterministic window for a racing request.
type hookTable struct {
	SessionTable
	fired atomic.Bool
	after func(s *Session, created bool)
}

func (t *hookTable) GetOrCreate(key string, create func() *Session) (*Session, bool) {
	s, created := t.SessionTable.GetOrCreate(key, create)
	if t.fired.CompareAndSwap(false, true) {
		t.after(s, created)
	}
	return s, created
}

// A first MESSAGE that its session would refuse (415) must not take down a MESSAGE for the same key that
// arrived meanwhile, on another transport, and was accepted: that one is delivered, never failed with 480
// for want of a setup. The second MESSAGE comes (over UDP) while the first (over TCP) is between its table
// lookup and its answer.
func TestRefusedFirstMessageSparesConcurrentOne(t *testing.T) {
	alice := testpeer.NewPhone(t, "spare-alice")
	bob := testpeer.NewClient(t, "spare-bob")
	// Between the test's goroutine and the gateway's that runs the hook, the gateway's address goes one way
	// and the second MESSAGE's answer the other.
	var udpAddr atomic.Pointer[string]
	type result struct {
		res *sip.Response
		err error
	}
	answered := make(chan result, 1)
	table := &hookTable{SessionTable: newMemTable()}
	table.after = func(*Session, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		res, err := alice.TrySend(ctx, *udpAddr.Load(), bob.URI, "text/plain", "accepted meanwhile")
		answered <- result{res, err}
	}
	h := newHarnessWith(t, nil, Options{Table: table})
	addr := h.udp()
	udpAddr.Store(&addr)

	first := alice.NewMessage(bob.URI, "application/x-unknown", "refused")
	first.SetTransport("TCP")
	first.SetDestination(h.gw.SIPAddr("tcp"))
	res, err := doReq(alice.SIPClient(), first)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 415 || res.GetHeader("Accept") == nil {
		t.Fatalf("first MESSAGE answered %d %s (Accept %v), want 415 with Accept", res.StatusCode, res.Reason, res.GetHeader("Accept"))
	}
	var second *sip.Response
	select {
	case r := <-answered:
		if r.err != nil {
			t.Fatal(r.err)
		}
		second = r.res
	default:
		t.Fatal("the hook never ran: the test shows nothing")
	}
	if second.StatusCode != 202 {
		t.Fatalf("second MESSAGE answered %d %s, want 202 (reply: accept)", second.StatusCode, second.Reason)
	}
	// Its outcome: the first of message_delivered or message_failed.
	deadline := time.After(waitFor)
	for done := false; !done; {
		select {
		case e := <-h.events.ch:
			switch e.Kind {
			case event.MessageFailed:
				t.Fatalf("the accepted MESSAGE failed with %d %s, want it delivered", e.Code, e.Reason)
			case event.MessageDelivered:
				done = true
			}
		case <-deadline:
			t.Fatalf("no outcome for the accepted MESSAGE within %s", waitFor)
		}
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "accepted meanwhile" {
		t.Fatalf("SEND %q, want the accepted MESSAGE", m.Body)
	}
}

// Wrapped types are taken only inside message/cpim (RFC 4975 §8.6): with message.accept_types leaving CPIM
// out (the reference's "text/plain" migrated as it was), a MESSAGE of an accept_wrapped_types type is refused
// (SPEC §4), and the Accept of a 415 must not name those types as if they were taken. Likewise for a peer
// whose answer lists accept-wrapped-types without message/cpim to wrap them in.
func TestAcceptHeaderWithoutCPIM(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.AcceptTypes = []string{"text/plain"}
	})
	alice := testpeer.NewPhone(t, "nocpim-alice")
	bob := testpeer.NewClient(t, "nocpim-bob")
	res := alice.Send(h.udp(), bob.URI, "text/html", "<b>hi</b>")
	if res.StatusCode != 415 {
		t.Fatalf("MESSAGE answered %d %s, want 415", res.StatusCode, res.Reason)
	}
	if a := res.GetHeader("Accept"); a == nil || a.Value() != "text/plain" {
		t.Fatalf("415 with Accept %v, want text/plain", a)
	}

	bob.SetTypes([]string{"text/plain"}, []string{"text/html"})
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hi"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	bob.WaitInvite().Recv()
	res = alice.Send(h.udp(), bob.URI, "text/html", "<b>hi</b>")
	if res.StatusCode != 415 {
		t.Fatalf("MESSAGE the peer cannot take answered %d %s, want 415", res.StatusCode, res.Reason)
	}
	if a := res.GetHeader("Accept"); a == nil || a.Value() != "text/plain" {
		t.Fatalf("415 with Accept %v, want text/plain (the peer takes text/html only inside CPIM, which it does not take)", a)
	}
}

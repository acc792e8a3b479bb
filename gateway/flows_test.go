package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
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

// MESSAGE first (SPEC §3.1): a phone chats with an MSRP client that has never called it.
func TestMessageFirstBothWays(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	for i := 1; i <= 3; i++ {
		res := alice.Send(h.udp(), bob.URI, "text/plain", fmt.Sprintf("hello %d", i))
		if res.StatusCode != 202 {
			t.Fatalf("MESSAGE %d: got %d, want 202 (reply: accept)", i, res.StatusCode)
		}
	}
	cs := bob.WaitInvite()
	for i := 1; i <= 3; i++ {
		m := cs.Recv()
		if got, want := string(m.Body), fmt.Sprintf("hello %d", i); got != want || m.ContentType != "text/plain" {
			t.Fatalf("SEND %d: %q (%s), want %q text/plain", i, got, m.ContentType, want)
		}
	}
	h.events.waitKind(t, event.SessionStarted)

	// The MSRP side answers: it becomes a MESSAGE From bob To alice, to alice's URI.
	for i := 1; i <= 3; i++ {
		if r := cs.Send("text/plain", fmt.Sprintf("reply %d", i)); r.StatusCode != 200 || r.Err != nil {
			t.Fatalf("SEND reply %d: %+v", i, r)
		}
	}
	for i := 1; i <= 3; i++ {
		m := alice.Recv()
		if got, want := string(m.Body()), fmt.Sprintf("reply %d", i); got != want {
			t.Fatalf("MESSAGE %d to alice: %q, want %q", i, got, want)
		}
		if m.From().Address.String() != bob.URI || m.To().Address.String() != alice.URI || m.Recipient.String() != alice.URI {
			t.Fatalf("MESSAGE coordinates: From %s To %s R-URI %s; want From %s To %s", m.From().Address.String(), m.To().Address.String(), m.Recipient.String(), bob.URI, alice.URI)
		}
		if m.Contact() != nil {
			t.Fatal("a MESSAGE must not carry Contact (RFC 3428 §4)")
		}
	}

	// A later MESSAGE goes into the same session, not a new INVITE.
	alice.Send(h.udp(), bob.URI, "text/plain", "same session")
	if m := cs.Recv(); string(m.Body) != "same session" {
		t.Fatalf("got %q", m.Body)
	}
	if n := h.events.count(event.SessionStarted); n != 1 {
		t.Fatalf("%d sessions started, want 1", n)
	}

	// BYE from the MSRP side ends it; the next MESSAGE sets up a new one.
	cs.Bye()
	h.events.waitKind(t, event.SessionEnded)
	alice.Send(h.udp(), bob.URI, "text/plain", "after bye")
	cs2 := bob.WaitInvite()
	if m := cs2.Recv(); string(m.Body) != "after bye" {
		t.Fatalf("got %q", m.Body)
	}
}

// Session first (SPEC §3.2): an MSRP client calls a phone.
func TestSessionFirstBothWays(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	cs := bob.Call(h.udp(), alice.URI, "actpass")
	for i := 1; i <= 3; i++ {
		if r := cs.Send("text/plain", fmt.Sprintf("hi %d", i)); r.StatusCode != 200 {
			t.Fatalf("SEND %d: %+v", i, r)
		}
	}
	for i := 1; i <= 3; i++ {
		m := alice.Recv()
		if got, want := string(m.Body()), fmt.Sprintf("hi %d", i); got != want {
			t.Fatalf("MESSAGE %d: %q, want %q", i, got, want)
		}
		if m.From().Address.String() != bob.URI || m.To().Address.String() != alice.URI {
			t.Fatalf("From %s To %s", m.From().Address.String(), m.To().Address.String())
		}
	}
	// alice answers: key $tu:$fu = bob:alice = the INVITE's $fu:$tu, so it rides the same session.
	alice.Send(h.udp(), bob.URI, "text/plain", "hello bob")
	if m := cs.Recv(); string(m.Body) != "hello bob" {
		t.Fatalf("got %q", m.Body)
	}
	select {
	case cs2 := <-bob.Invites():
		t.Fatalf("the reply made a new session %v", cs2)
	default:
	}
	list := h.gw.Sessions()
	if len(list) != 1 || list[0].State != "up" || list[0].Origin != originInvite {
		t.Fatalf("sessions: %+v", list)
	}
	cs.Bye()
	h.events.waitKind(t, event.SessionEnded)
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after BYE", n)
	}
}

// setup-failed (SPEC §5): the INVITE is refused, the phone is told with code and reason, in every reply mode:
// also when the MESSAGE was answered 200 at once (ok), or already with the code itself (wait).
func TestSetupFailedBusy(t *testing.T) {
	for _, c := range []struct {
		reply string
		want  int // the MESSAGE's final response
	}{{"accept", 202}, {"ok", 200}, {"wait", 486}} {
		t.Run(c.reply, func(t *testing.T) {
			h := newHarness(t, func(cfg *config.Config) { cfg.Gateway.Message.Reply = c.reply })
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			bob.SetAnswer(486, "")

			if res := alice.Send(h.udp(), bob.URI, "text/plain", "are you there?"); res.StatusCode != c.want {
				t.Fatalf("MESSAGE answered %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			e := h.events.waitKind(t, event.SetupFailed)
			if e.Code != 486 || e.Reason != "Busy Here" || e.Key != bob.URI+":"+alice.URI {
				t.Fatalf("setup_failed event: %+v", e)
			}
			if e.FromURI != bob.URI || e.ToURI != alice.URI || e.RURI != alice.URI {
				t.Fatalf("setup_failed coordinates: %+v", e)
			}
			n := alice.Recv()
			if got := string(n.Body()); got != "Failed to establish session, error: 486 Busy Here" {
				t.Fatalf("notification body %q", got)
			}
			if n.From().Address.String() != bob.URI || n.To().Address.String() != alice.URI {
				t.Fatalf("notification From %s To %s", n.From().Address.String(), n.To().Address.String())
			}
			if strings.Contains(n.String(), "sip:sip:") {
				t.Fatalf("malformed URI in notification:\n%s", n.String())
			}
			alice.Quiet(300 * time.Millisecond) // exactly one notification
		})
	}
}

// setup_timeout with no answer at all: the gateway's own 408, never empty.
func TestSetupFailedTimeout(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 500 * time.Millisecond })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetAnswer(0, "") // never answers

	alice.Send(h.udp(), bob.URI, "text/plain", "anyone?")
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 408 || e.Reason != "Request Timeout" {
		t.Fatalf("setup_failed: %d %q", e.Code, e.Reason)
	}
	if got := string(alice.Recv().Body()); got != "Failed to establish session, error: 408 Request Timeout" {
		t.Fatalf("notification %q", got)
	}
}

// The peer answers, but the MSRP connection cannot be made (closed port): 480 MSRP connection failed.
func TestSetupFailedConnectionRefused(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.Endpoint.Close() // bob's a=path now points at a closed port

	alice.Send(h.udp(), bob.URI, "text/plain", "hello?")
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 480 || e.Reason != "MSRP connection failed" {
		t.Fatalf("setup_failed: %d %q", e.Code, e.Reason)
	}
	if got := string(alice.Recv().Body()); got != "Failed to establish session, error: 480 MSRP connection failed" {
		t.Fatalf("notification %q", got)
	}
}

// The INVITE cannot be sent at all (its TCP connection is refused): a transport failure, treated as 503
// (RFC 3261 §8.1.3.1), for the MESSAGE's answer, the setup-failed event and the notification alike — not an
// MSRP connection failure, which would send an operator looking at the wrong side.
func TestSetupFailedInviteNotSent(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	res := alice.Send(h.udp(), "sip:nobody@"+closed+";transport=tcp", "text/plain", "hello?")
	if res.StatusCode != 503 {
		t.Errorf("MESSAGE answered %d %s, want 503", res.StatusCode, res.Reason)
	}
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 503 || e.Reason != "Service Unavailable" {
		t.Fatalf("setup_failed: %d %q", e.Code, e.Reason)
	}
	if got := string(alice.Recv().Body()); got != "Failed to establish session, error: 503 Service Unavailable" {
		t.Fatalf("notification %q", got)
	}
}

// The MSRP connection is made but the peer refuses our first SEND (403): the setup fails with the code the
// SEND's response maps to (SPEC §3.1 step 6, §5), for the setup-failed event, the notification and the
// queued MESSAGE alike, and the dialog gets BYE.
func TestSetupFailedFirstSendRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClientWith(t, "bob", testpeer.ClientConfig{
		PeerMedia: func(cs *testpeer.ClientSession, _ *sdp.Media) error {
			cs.MSRP.SetPeerVerifier(func(*tls.ConnectionState, bool) error { return errors.New("not this peer") })
			return nil
		},
	})

	res := alice.Send(h.udp(), bob.URI, "text/plain", "refused")
	if res.StatusCode != 403 {
		t.Fatalf("MESSAGE answered %d %s, want 403", res.StatusCode, res.Reason)
	}
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 403 || e.Reason != "Forbidden" {
		t.Fatalf("setup_failed: %d %q", e.Code, e.Reason)
	}
	if got := string(alice.Recv().Body()); got != "Failed to establish session, error: 403 Forbidden" {
		t.Fatalf("notification %q", got)
	}
	bob.WaitInvite().WaitBye()
}

// Bad input gets the response SPEC §8 names, and the gateway keeps serving.
func TestBadSIPInput(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	cases := []struct {
		name  string
		ctype string
		body  string
		want  int
	}{
		{"no body", "text/plain", "", 400},
		{"no content type", "", "hello", 400},
		{"too large", "text/plain", strings.Repeat("x", int(h.cfg.Gateway.MaxMessageSize)+1), 413},
		{"unsupported type", "application/x-unknown", "x", 415},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := alice.NewMessage(bob.URI, c.ctype, c.body)
			req.SetDestination(h.udp())
			if len(c.body) > 1000 {
				req.SetTransport("TCP")
				req.SetDestination(h.gw.SIPAddr("tcp"))
			}
			res, err := doReq(alice.SIPClient(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != c.want {
				t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, c.want)
			}
			if c.want == 415 && res.GetHeader("Accept") == nil {
				t.Fatal("415 without Accept")
			}
		})
	}
	for _, m := range []struct {
		method string
		want   int
	}{{"REGISTER", 405}, {"SUBSCRIBE", 405}, {"FOOBAR", 501}} {
		var ruri sip.Uri
		sip.ParseUri("sip:gw@"+h.udp(), &ruri)
		req := sip.NewRequest(sip.RequestMethod(m.method), ruri)
		req.SetDestination(h.udp())
		res, err := doReq(alice.SIPClient(), req)
		if err != nil {
			t.Fatalf("%s: %v", m.method, err)
		}
		if res.StatusCode != m.want {
			t.Fatalf("%s: got %d, want %d", m.method, res.StatusCode, m.want)
		}
		if res.GetHeader("Allow") == nil {
			t.Fatalf("%s: no Allow header", m.method)
		}
	}
	// Still serving.
	alice.Send(h.udp(), bob.URI, "text/plain", "still there")
	if m := bob.WaitInvite().Recv(); string(m.Body) != "still there" {
		t.Fatalf("got %q", m.Body)
	}
}

// a=accept-wrapped-types goes with CPIM (SPEC §3.1 step 3): it names what may come inside a container
// (RFC 4975 §8.6), so an SDP whose accept-types do not take message/cpim leaves it out. Offer: the message
// rule's types without CPIM. Answer: a peer offering no CPIM, which the answer's common types then lack.
func TestAcceptWrappedTypesOnlyWithCPIM(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.AcceptTypes = []string{"text/plain"} })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	offer, err := sdp.Parse(cs.ServerDialog().InviteRequest.Body())
	if err != nil {
		t.Fatal(err)
	}
	if offer.AcceptWrappedTypes != nil {
		t.Fatalf("offer with accept-types %q has accept-wrapped-types %q", offer.AcceptTypes, offer.AcceptWrappedTypes)
	}

	carol := testpeer.NewClient(t, "carol")
	carol.SetTypes([]string{"text/plain"}, nil)
	dave := testpeer.NewPhone(t, "dave")
	ccs := carol.NewSession()
	res := invitePeer(t, carol, h.udp(), dave.URI, "application/sdp", carol.Media(ccs, sdp.SetupActPass).Marshal(1, 1))
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	if ans.AcceptWrappedTypes != nil {
		t.Fatalf("answer with accept-types %q has accept-wrapped-types %q", ans.AcceptTypes, ans.AcceptWrappedTypes)
	}
}

// A page-mode Content-Type with the whitespace SIP allows around ";" and "=" goes out on MSRP without it: RFC
// 4975's media-type grammar has none, and a strict peer would refuse the SEND.
func TestContentTypeWhitespaceNotCarriedToMSRP(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "ct-alice")
	bob := testpeer.NewClient(t, "ct-bob")
	if res := alice.Send(h.udp(), bob.URI, "text/plain; charset = UTF-8", "hello"); res.StatusCode >= 300 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	cs := bob.WaitInvite()
	if m := cs.Recv(); m.ContentType != "text/plain;charset=UTF-8" {
		t.Fatalf("SEND Content-Type %q, want text/plain;charset=UTF-8", m.ContentType)
	}
	// A quoted parameter value is the sender's to keep, not the whitespace around it.
	if res := alice.Send(h.udp(), bob.URI, `text/plain; charset="UTF-8"`, "quoted"); res.StatusCode >= 300 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	if m := cs.Recv(); m.ContentType != `text/plain;charset="UTF-8"` {
		t.Fatalf(`SEND Content-Type %q, want text/plain;charset="UTF-8"`, m.ContentType)
	}
}

func TestMSRPMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"text/plain":                   "text/plain",
		" text/plain;charset=UTF-8 ":   "text/plain;charset=UTF-8",
		"text/plain ; charset = utf-8": "text/plain;charset=utf-8",
		"application/x; a=1;\tb = 2":   "application/x;a=1;b=2",
		`text/plain; x="a; b"`:         `text/plain;x="a; b"`,
		`text/plain; charset="UTF-8"`:  `text/plain;charset="UTF-8"`,
		`text/x ;a = "b\" ;c" ; d=e`:   `text/x;a="b\" ;c";d=e`,
		"message/cpim":                 "message/cpim",
	} {
		if got := msrpMediaType(in); got != want {
			t.Errorf("msrpMediaType(%q) = %q, want %q", in, got, want)
		}
	}
}

// gateway.message.reply: ok answers each MESSAGE 200 at once (SPEC §5, the reference's behaviour): an
// isComposing for a key without a session, which sets nothing up (SPEC §3.1 step 6), too.
func TestOkModeAnswersIsComposing200(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "ok" })
	alice := testpeer.NewPhone(t, "rok-alice")
	bob := testpeer.NewClient(t, "rok-bob")
	isc := `<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`
	if res := alice.Send(h.udp(), bob.URI, cpim.IsComposingType, isc); res.StatusCode != 200 {
		t.Fatalf("isComposing in reply mode ok answered %d %s, want 200", res.StatusCode, res.Reason)
	}
}

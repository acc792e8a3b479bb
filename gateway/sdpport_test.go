package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// RFC 4975 §8.2: the URIs of an SDP a=path carry explicit ports; 2855 is no default (§6). A peer SDP whose
// a=path has a URI without one gives the gateway nothing to connect to, and is refused wherever it comes: an
// offer (488), the answer to our INVITE (the setup fails), a re-INVITE (488), the answer in an ACK (BYE).

// noPortPaths are a=path values the gateway must refuse: an IP address without a port, and a host name
// without one.
var noPortPaths = []string{"msrp://127.0.0.1/noport1;tcp", "msrp://bob.example.com/noport2;tcp"}

func TestOfferPathWithoutPortRefused(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	for _, path := range noPortPaths {
		m := bob.Media(bob.NewSession(), sdp.SetupActive)
		m.Path = []string{path}
		req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", m.Marshal(1, 1))
		if err != nil {
			t.Fatal(err)
		}
		var contact sip.Uri
		if err := sip.ParseUri(bob.URI, &contact); err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(&sip.ContactHeader{Address: contact})
		req.SetDestination(h.udp())
		res, err := doReq(bob.SIPClient(), req)
		if err != nil {
			t.Fatal(err)
		}
		w := res.GetHeader("Warning")
		if res.StatusCode != 488 || w == nil || !strings.Contains(w.Value(), path) || !strings.Contains(w.Value(), "no port") {
			t.Fatalf("offer with a=path:%s answered %d %s, Warning %v; want 488 with a Warning naming the URI and its missing port",
				path, res.StatusCode, res.Reason, w)
		}
		l := logs.wait(t, "request refused", map[string]string{"code": "488", "call_id": callID(req)})
		if !strings.Contains(l.attrs["why"], "no port") {
			t.Fatalf("log line %v does not say why", l.attrs)
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after refused offers", n)
	}
	if n := h.gw.msrp.NumSessions(); n != 0 {
		t.Fatalf("%d MSRP sessions left open by refused offers", n)
	}
}

// The answer to the gateway's INVITE: the setup fails like one with any other unusable SDP answer (BYE, 480
// Bad SDP answer for the queued MESSAGE, setup-failed), and the log says what was wrong.
func TestAnswerPathWithoutPortFailsSetup(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" }, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.EditMedia(func(m *sdp.Media) { m.Path = []string{noPortPaths[0]} })
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode != 480 || res.Reason != "Bad SDP answer" {
		t.Fatalf("MESSAGE answered %d %s, want 480 Bad SDP answer", res.StatusCode, res.Reason)
	}
	bob.WaitInvite().WaitBye()
	if e := h.events.waitKind(t, event.SetupFailed); e.Code != 480 {
		t.Fatalf("setup_failed %+v, want code 480", e)
	}
	l := logs.wait(t, "session setup failed", map[string]string{"code": "480"})
	if !strings.Contains(l.attrs["err"], noPortPaths[0]) || !strings.Contains(l.attrs["err"], "no port") {
		t.Fatalf("log line %v does not say what was wrong", l.attrs)
	}
	if got := string(alice.Recv().Body()); !strings.Contains(got, "480 Bad SDP answer") {
		t.Fatalf("setup-failed notification %q", got)
	}
}

// A re-INVITE: 488, and the session carries on on its path.
func TestReinvitePathWithoutPortRefused(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	if got := string(cs.Recv().Body); got != "before" {
		t.Fatalf("got %q", got)
	}
	m := bob.Media(bob.NewSession(), sdp.SetupPassive)
	m.Path = []string{noPortPaths[1]}
	req := sip.NewRequest(sip.INVITE, cs.ServerDialog().InviteRequest.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(m.Marshal(1, 2))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	res, err := cs.ServerDialog().Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if w := res.GetHeader("Warning"); res.StatusCode != 488 || w == nil || !strings.Contains(w.Value(), "no port") {
		t.Fatalf("re-INVITE answered %d %s, Warning %v; want 488 saying why", res.StatusCode, res.Reason, w)
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(cs.Recv().Body); got != "after" {
		t.Fatalf("after the refused re-INVITE got %q", got)
	}
}

// The answer in the ACK of a late-offer INVITE: no usable answer, BYE (SPEC §3.2 step 2).
func TestAckAnswerPathWithoutPortEndsSession(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, nil, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil) // no SDP: a late offer
	if err != nil {
		t.Fatal(err)
	}
	offer, dlg := inviteAnswered(t, h, bob, req)
	if _, err := msrp.ParseSDPPath(strings.Join(offer.Path, " ")); err != nil {
		t.Fatalf("the gateway's own a=path: %v", err)
	}
	m := bob.Media(bob.NewSession(), sdp.SetupPassive)
	m.Path = []string{noPortPaths[0]}
	ackWith(t, dlg, m)
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "no_sdp_answer" {
		t.Fatalf("session ended with reason %q, want no_sdp_answer", e.Reason)
	}
	if l := logs.wait(t, "unusable a=path in ACK", nil); !strings.Contains(l.attrs["err"], "no port") {
		t.Fatalf("log line %v does not say why", l.attrs)
	}
}

package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
)

// message.invite_headers and message.contact_params reach the generated INVITE (what RCS cores expect).
func TestInviteHeadersAndContactParams(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.InviteHeaders = []string{"P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"}
		c.Gateway.Message.ContactParams = `+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session"`
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	inv := cs.ServerDialog().InviteRequest
	if hd := inv.GetHeader("P-Preferred-Service"); hd == nil || hd.Value() != "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session" {
		t.Fatalf("P-Preferred-Service: %v", hd)
	}
	if c := inv.Contact(); c == nil || !strings.Contains(c.Value(), "+g.3gpp.icsi-ref") {
		t.Fatalf("Contact %v lacks the feature tag", c)
	}
	if got := string(cs.Recv().Body); got != "hi" {
		t.Fatalf("got %q", got)
	}
}

// gateway.cpim_passthrough: CPIM reaches the page-mode user unchanged (and no IMDN is generated).
func TestCPIMPassthrough(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.CPIMPassthrough = true })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain"})
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	w := cpim.Wrap("text/plain", []byte("wrapped"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(), IMDNMessageID: "x1", Disposition: []string{"positive-delivery"}})
	doc := string(w.Marshal())
	cs.Send("message/cpim", doc)
	m := alice.Recv()
	if m.ContentType().Value() != "message/cpim" || string(m.Body()) != doc {
		t.Fatalf("got %s %q", m.ContentType().Value(), m.Body())
	}
	select {
	case in := <-cs.Inbox():
		t.Fatalf("IMDN generated for passed-through CPIM: %q", in.Body)
	case <-time.After(300 * time.Millisecond):
	}
	// A control payload stays a control payload wrapped: isComposing in CPIM never reaches the phone (SPEC §4).
	isc := cpim.Wrap("application/im-iscomposing+xml", []byte(`<?xml version="1.0"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`),
		cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now()})
	if r := cs.Send("message/cpim", string(isc.Marshal())); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	cs.Send("message/cpim", doc) // a chat message after it, which does arrive
	if m := alice.Recv(); string(m.Body()) != doc {
		t.Fatalf("after a wrapped isComposing the phone got %s %q, want the chat message", m.ContentType().Value(), m.Body())
	}
}

// gateway.forward_control: isComposing reaches the page-mode user only when switched on.
func TestForwardControl(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.ForwardControl = true })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"text/plain", "application/im-iscomposing+xml"}, nil)
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	cs.Send("application/im-iscomposing+xml", "<isComposing/>")
	if m := alice.Recv(); m.ContentType().Value() != "application/im-iscomposing+xml" {
		t.Fatalf("got %s", m.ContentType().Value())
	}
}

// gateway.imdn.request: CPIM the gateway wraps asks for delivery notifications (and only then).
func TestIMDNRequest(t *testing.T) {
	for _, request := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[request], func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.IMDN.Request = request })
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			bob.SetTypes([]string{"message/cpim"}, []string{"text/plain", "message/imdn+xml"})
			alice.Send(h.udp(), bob.URI, "text/plain", "please confirm")
			m := bob.WaitInvite().Recv()
			c, err := cpim.Parse(m.Body)
			if err != nil {
				t.Fatal(err)
			}
			asked := c.IMDNMessageID() != "" && c.Wants("positive-delivery")
			if asked != request {
				t.Fatalf("imdn.request %v: CPIM asks for IMDN = %v\n%s", request, asked, m.Body)
			}
		})
	}
}

// An in-dialog OPTIONS (a proxy's dialog ping) is answered 200 in a dialog the gateway has, and 481 in one it
// does not (ended, or lost in a restart), so the pinger ends its side (RFC 3261 §12.2.2); one out of a
// dialog stays 200.
func TestInDialogOptions(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	inv := cs.ServerDialog().InviteRequest
	gwTag, _ := inv.From().Params.Get("tag")
	bobTag, _ := cs.ServerDialog().InviteResponse.To().Params.Get("tag")

	options := func(callID, toTag string) int {
		t.Helper()
		var ruri sip.Uri
		sip.ParseUri("sip:gw@"+h.udp(), &ruri)
		req := sip.NewRequest(sip.OPTIONS, ruri)
		from := &sip.FromHeader{Address: inv.Recipient, Params: sip.NewParams()}
		from.Params.Add("tag", bobTag)
		to := &sip.ToHeader{Address: inv.From().Address, Params: sip.NewParams()}
		if toTag != "" {
			to.Params.Add("tag", toTag)
		}
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(from)
		req.AppendHeader(to)
		req.AppendHeader(&cid)
		res, err := alice.Do(context.Background(), h.udp(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	if code := options(inv.CallID().Value(), gwTag); code != 200 {
		t.Fatalf("OPTIONS in the session's dialog: %d, want 200", code)
	}
	if code := options("no-such-call", gwTag); code != 481 {
		t.Fatalf("OPTIONS in a dialog the gateway does not have: %d, want 481", code)
	}
	if code := options("out-of-dialog", ""); code != 200 {
		t.Fatalf("OPTIONS out of a dialog: %d, want 200", code)
	}
}

// SPEC §5: "When CPIM passes through unchanged, the gateway never generates IMDNs." TestCPIMPassthrough checks
// this against a peer whose SDP does not take message/imdn+xml, so an IMDN the gateway made would be stopped by
// peerTakesIMDN anyway and the check cannot fail. Here the peer takes IMDNs, and the same exchange without
// passthrough must produce the `delivered` IMDN (so the quiet inbox under passthrough means something).
func TestPassthroughNeverGeneratesIMDN(t *testing.T) {
	for _, passthrough := range []bool{false, true} {
		name := map[bool]string{false: "unwrapped: IMDN sent", true: "passthrough: no IMDN"}[passthrough]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.CPIMPassthrough = passthrough })
			alice := testpeer.NewPhone(t, "pt-alice")
			alice.SetAnswer(200)
			bob := testpeer.NewClient(t, "pt-bob")
			bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
			cs := bob.Call(h.udp(), alice.URI, "actpass")
			w := cpim.Wrap("text/plain", []byte("tell me"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
				IMDNMessageID: "pt-1", Disposition: []string{cpim.PositiveDelivery, cpim.NegativeDelivery}})
			if r := cs.SendOut(&msrp.Outgoing{ContentType: "message/cpim", Body: w.Marshal()}); r.StatusCode != 200 {
				t.Fatalf("SEND answered %+v", r)
			}
			alice.Recv()
			m, got := cs.TryRecv(time.Second)
			if passthrough {
				if got {
					t.Fatalf("IMDN generated for CPIM passed through unchanged: %s %q", m.ContentType, m.Body)
				}
				return
			}
			if !got {
				t.Fatal("no IMDN delivered for unwrapped CPIM: the peer setup cannot show a passthrough IMDN either")
			}
			n, err := cpim.Parse(m.Body)
			if err != nil {
				t.Fatalf("IMDN: %v", err)
			}
			if note, err := cpim.ParseNotification(n.Body); err != nil || note.Status != "delivered" || note.MessageID != "pt-1" {
				t.Fatalf("IMDN %+v %v, want delivered for pt-1", note, err)
			}
		})
	}
}

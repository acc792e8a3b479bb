package testpeer

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// The peers talk to each other directly here (no gateway), so a broken peer shows up in this package and not
// as a mysterious gateway failure.

func TestPhoneToPhone(t *testing.T) {
	a, b := NewPhone(t, "alice"), NewPhone(t, "bob")
	for _, code := range []int{200, 486} {
		b.SetAnswer(code)
		res := a.Send(b.Addr, b.URI, "text/plain", "hello")
		if int(res.StatusCode) != code {
			t.Fatalf("answer %d: got %d", code, res.StatusCode)
		}
		got := b.Recv()
		if string(got.Body()) != "hello" || got.From().Address.String() != a.URI {
			t.Fatalf("bob got %q from %s, want hello from %s", got.Body(), got.From().Address.String(), a.URI)
		}
		if ct := got.ContentType(); ct == nil || ct.Value() != "text/plain" {
			t.Fatalf("Content-Type %v", ct)
		}
	}
	if b.Received() != 2 || len(b.Messages()) != 2 {
		t.Fatalf("Received %d, Messages %d, want 2", b.Received(), len(b.Messages()))
	}
	b.Quiet(0)
}

func TestClientToClient(t *testing.T) {
	for _, setup := range []string{sdp.SetupPassive, sdp.SetupActive} {
		t.Run("answer "+setup, func(t *testing.T) {
			a, b := NewClient(t, "alice"), NewClient(t, "bob")
			b.SetAnswer(200, setup)
			ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
			defer cancel()
			as, err := a.Invite(ctx, b.Addr, b.URI, sdp.SetupActPass)
			if err != nil {
				t.Fatal(err)
			}
			bs := b.WaitInvite()
			if bs.CallID == "" || bs.CallID != as.CallID {
				t.Fatalf("Call-IDs %q and %q", as.CallID, bs.CallID)
			}
			if r := as.Send("text/plain", "one"); r.StatusCode != 200 || r.Err != nil {
				t.Fatalf("a SEND: %+v", r)
			}
			if m := bs.Recv(); string(m.Body) != "one" {
				t.Fatalf("b got %q", m.Body)
			}
			bs.SetReply(415)
			if r := as.Send("text/plain", "two"); r.StatusCode != 415 {
				t.Fatalf("a SEND answered %+v, want 415", r)
			}
			bs.Recv()
			if r := bs.Send("text/plain", "back"); r.StatusCode != 200 {
				t.Fatalf("b SEND: %+v", r)
			}
			if m := as.Recv(); string(m.Body) != "back" || as.Received() != 1 {
				t.Fatalf("a got %q (%d)", m.Body, as.Received())
			}
			if bs.GotBye() {
				t.Fatal("BYE before one was sent")
			}
			as.Bye()
			bs.WaitBye()
			bs.WaitClosed()
		})
	}
}

func TestInviteRefused(t *testing.T) {
	a, b := NewClient(t, "alice"), NewClient(t, "bob")
	b.SetAnswer(486, "")
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	_, err := a.Invite(ctx, b.Addr, b.URI, sdp.SetupActPass)
	if code := InviteCode(err); code != 486 {
		t.Fatalf("Invite = %v (code %d), want 486", err, code)
	}
}

func TestPhoneConfig(t *testing.T) {
	a := NewPhoneWith(t, "alice", PhoneConfig{Host: "127.0.0.2"})
	if !strings.HasPrefix(a.Addr, "127.0.0.2:") {
		t.Fatalf("Addr %s, want one on 127.0.0.2", a.Addr)
	}
	// b refuses the first MESSAGE and takes the second; only that one counts as received.
	var calls atomic.Int32
	b := NewPhoneWith(t, "bob", PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		if calls.Add(1) == 1 {
			tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return false
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		return true
	}})
	if res := a.Send(b.Addr, b.URI, "text/plain", "one"); res.StatusCode != 403 {
		t.Fatalf("first MESSAGE: %d, want 403", res.StatusCode)
	}
	if res := a.Send(b.Addr, b.URI, "text/plain", "two"); res.StatusCode != 200 {
		t.Fatalf("second MESSAGE: %d, want 200", res.StatusCode)
	}
	if m := b.Recv(); string(m.Body()) != "two" || b.Received() != 1 {
		t.Fatalf("b got %q, %d received", m.Body(), b.Received())
	}
	if src := b.Messages()[0].Source(); !strings.HasPrefix(src, "127.0.0.2:") {
		t.Fatalf("MESSAGE from %s, want from 127.0.0.2", src)
	}
}

func TestClientConfig(t *testing.T) {
	var seen atomic.Int32
	a := NewClient(t, "alice")
	b := NewClientWith(t, "bob", ClientConfig{Fingerprint: "SHA-256 00:11", PeerMedia: func(cs *ClientSession, m *sdp.Media) error {
		seen.Add(1)
		return nil
	}})
	b.SetReply(415) // from the first SEND on
	as := a.Call(b.Addr, b.URI, sdp.SetupActPass)
	bs := b.WaitInvite()
	if seen.Load() != 1 {
		t.Fatalf("PeerMedia called %d times, want 1", seen.Load())
	}
	if bs.ServerDialog() == nil || as.ClientDialog() == nil {
		t.Fatal("dialogs missing")
	}
	if fp := bs.ServerDialog().InviteResponse.Body(); !strings.Contains(string(fp), "a=fingerprint:SHA-256 00:11") {
		t.Fatalf("b's answer lacks its fingerprint:\n%s", fp)
	}
	if r := as.Send("text/plain", "one"); r.StatusCode != 415 {
		t.Fatalf("SEND answered %+v, want 415", r)
	}
	as.Bye()
	bs.WaitBye()
}

// Through a Relay: the caller connects to the relay, the relay answers each SEND itself and forwards it, the
// callee's success REPORT and its own SENDs come back the same way, and a relay told to fail reports it itself.
func TestClientBehindRelay(t *testing.T) {
	a, b := NewClient(t, "alice"), NewClient(t, "bob")
	relay := NewRelay(t)
	b.SetRelay(relay)
	as := a.Call(b.Addr, b.URI, sdp.SetupActPass) // bob answers passive: alice connects, to the relay
	bs := b.WaitInvite()
	if p := msrp.FormatPath(as.MSRP.PeerPath()); p != relay.URI.String()+" "+bs.MSRP.LocalURI().String() {
		t.Fatalf("alice's peer path %s, want the relay's URI then bob's", p)
	}
	if r := as.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("one"), SuccessReport: true}); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v", r)
	}
	if m := <-relay.Sends(); string(m.Body) != "one" {
		t.Fatalf("the relay got %q", m.Body)
	}
	if m := bs.Recv(); string(m.Body) != "one" || msrp.FormatPath(m.FromPath) != relay.URI.String()+" "+as.MSRP.LocalURI().String() {
		t.Fatalf("bob got %q from %s", m.Body, msrp.FormatPath(m.FromPath))
	}
	if r := as.Report(); r.StatusCode != 200 {
		t.Fatalf("alice got REPORT %d, want bob's success REPORT", r.StatusCode)
	}
	if r := bs.Send("text/plain", "back"); r.StatusCode != 200 {
		t.Fatalf("bob's SEND answered %+v", r)
	}
	if m := as.Recv(); string(m.Body) != "back" {
		t.Fatalf("alice got %q", m.Body)
	}
	relay.SetReportFailure(408)
	if r := as.Send("text/plain", "two"); r.StatusCode != 200 {
		t.Fatalf("SEND answered %+v, want the relay's 200", r)
	}
	if r := as.Report(); r.StatusCode != 408 {
		t.Fatalf("alice got REPORT %d, want the relay's 408", r.StatusCode)
	}
	if m, ok := bs.TryRecv(200 * time.Millisecond); ok {
		t.Fatalf("bob got %q, which the relay did not forward", m.Body)
	}
}

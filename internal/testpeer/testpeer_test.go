package testpeer

import (
	"context"
	"testing"

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

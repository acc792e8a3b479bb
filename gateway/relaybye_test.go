package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// Behind a relay the peer's success REPORT, not the relay's 200, says a message was delivered, and the REPORT
// takes one hop more than the 200 did: a BYE the peer sends just after it (over SIP) overtakes it all the more.
// The session waits for it within byeGrace, as it waits for an endpoint's 200: the message is delivered, not
// failed 480 (which would make its sender send it again).
func TestRelayByeOvertakingSuccessReport(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 4 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, "active")
	relay.SetReportDelay(100 * time.Millisecond) // the relay's 200 at once, the client's REPORT 100 ms later
	got := make(chan int, 1)
	go func() { got <- alice.Send(h.udp(), bob.URI, "text/plain", "last words").StatusCode }()
	cs.Recv() // the SEND is in; its success REPORT reaches the gateway 100 ms later
	ctx, cancel := context.WithTimeout(context.Background(), testpeer.WaitFor)
	defer cancel()
	if err := cs.ClientDialog().Bye(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != 200 {
		t.Fatalf("MESSAGE the peer reported delivered just before its BYE: %d, want 200", code)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "bye" {
		t.Fatalf("session ended %q, want bye", e.Reason)
	}
	alice.Quiet(300 * time.Millisecond) // no failure notification
}

// A newer INVITE that overtakes the success REPORT of a message the relay took (the peer got it and reported
// it just before it sent the INVITE) must not move that message to the new session: delivered there again.
func TestRelayReplaceDoesNotResendReportedSend(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	old := bob.Call(h.udp(), alice.URI, "actpass")
	relay.SetReportDelay(150 * time.Millisecond)
	replaceAfterDelivery(t, h, alice, bob, old, "reported before the INVITE")
}

// While a newer INVITE waits for the REPORTs of messages the old session's relay took, a failure REPORT (here
// 481: the peer dropped the old MSRP session for the new one) does not fail the message: it moves to the new
// session and is delivered there, as a SEND refused meanwhile does.
func TestRelayReplaceMovesSendReportedFailedMeanwhile(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob, relay := behindRelay(t, "bob")
	old := bob.Call(h.udp(), alice.URI, "actpass")
	old.SetReportFailure(481)
	relay.SetReportDelay(100 * time.Millisecond)
	res := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		r, _ := alice.TrySend(ctx, h.udp(), bob.URI, "text/plain", "refused by the old session")
		res <- r
	}()
	old.Recv()
	cs := bob.Call(h.udp(), alice.URI, "actpass")
	if m := cs.Recv(); string(m.Body) != "refused by the old session" {
		t.Fatalf("new session got %q", m.Body)
	}
	if r := <-res; r == nil || r.StatusCode != 200 {
		t.Fatalf("MESSAGE answered %v, want 200", r)
	}
	a := waitAccounted(t, h, 1, 0)
	if a.delivered[event.ToMSRP] != 1 {
		t.Fatalf("%d delivered, %d failed, want 1 delivered", a.delivered[event.ToMSRP], a.failed[event.ToMSRP])
	}
}

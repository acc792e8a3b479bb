package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// limits.max_sip_handlers: over the bound a request gets 503 with Retry-After at once, is counted, and the
// request already admitted completes normally. The refusal is logged with its Call-ID and source. The bound
// holds for the other requests the gateway serves too (an OPTIONS here: INVITE, BYE and OPTIONS share it).
// oneHandler configures the gateway as holdHandler needs it: one SIP handler, which a MESSAGE waiting for its
// outcome holds for reply_wait (4 s), before its setup would fail (setup_timeout 8 s).
func oneHandler(c *config.Config) {
	c.Limits.MaxSIPHandlers = 1
	c.Gateway.Message.Reply = "wait"
	c.Gateway.Message.ReplyWait = 4 * time.Second
	c.Gateway.SetupTimeout = 8 * time.Second
}

// holdHandler takes the gateway's only SIP handler (limits.max_sip_handlers 1, reply wait): a new phone
// sends a MESSAGE to a new UA that never answers the gateway's INVITE, and holdHandler returns once that INVITE
// arrived, the MESSAGE's handler waiting for reply_wait. It returns the UA's URI and a channel that gets the
// held MESSAGE's final status (0: none came). name prefixes the two users' names.
func holdHandler(t *testing.T, h *harness, name string) (string, <-chan int) {
	t.Helper()
	phone := testpeer.NewPhone(t, name+"-holder")
	invited := make(chan struct{}, 4)
	addr := testpeer.NewUA(t, name+"-silent", func(srv *sipgo.Server, _ *sipgo.Client, _ string) {
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
			invited <- struct{}{}
			<-tx.Done()
		})
	})
	uri := "sip:" + name + "-silent@" + addr
	first := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		res, err := phone.TrySend(ctx, h.udp(), uri, "text/plain", "held")
		if err != nil {
			first <- 0
			return
		}
		first <- res.StatusCode
	}()
	select {
	case <-invited:
	case <-time.After(waitFor):
		t.Fatal("no INVITE")
	}
	return uri, first
}

func TestMaxSIPHandlers(t *testing.T) {
	logs := newCapturedLog()
	h := newHarnessWith(t, func(c *config.Config) {
		oneHandler(c)
		c.Limits.RetryAfter = 7 * time.Second
	}, Options{Logger: slog.New(logs)})
	alice := testpeer.NewPhone(t, "lim-alice")
	bob, first := holdHandler(t, h, "lim")
	res := alice.Send(h.udp(), bob, "text/plain", "over the bound")
	if res.StatusCode != 503 {
		t.Fatalf("got %d %s, want 503", res.StatusCode, res.Reason)
	}
	if ra := res.GetHeader("Retry-After"); ra == nil || ra.Value() != "7" {
		t.Fatalf("Retry-After %v, want 7", ra)
	}
	var ruri sip.Uri
	sip.ParseUri("sip:gw@"+h.udp(), &ruri)
	opt := sip.NewRequest(sip.OPTIONS, ruri)
	opt.SetDestination(h.udp())
	if res, err := doReq(alice.SIPClient(), opt); err != nil {
		t.Fatal(err)
	} else if ra := res.GetHeader("Retry-After"); res.StatusCode != 503 || ra == nil || ra.Value() != "7" {
		t.Fatalf("OPTIONS over the bound: %d %s, Retry-After %v; want 503 with Retry-After 7", res.StatusCode, res.Reason, ra)
	}
	select {
	case code := <-first:
		t.Fatalf("the admitted MESSAGE answered %d while the test was refused: the bound was not held", code)
	default:
	}
	if e := h.events.waitKind(t, event.RequestRefused); e.Code != 503 {
		t.Fatalf("refusal counted with %d", e.Code)
	}
	logs.wait(t, "too many concurrent SIP requests, refusing", map[string]string{"call_id": res.CallID().Value(), "source": ""})
	if code := <-first; code != 202 {
		t.Fatalf("the admitted MESSAGE got %d, want 202 after reply_wait", code)
	}
}

package gateway

import (
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// challenger is a UA that answers every INVITE or MESSAGE with a digest challenge until it sees credentials
// (or always, with always set), and records what it got.
type challenger struct {
	mu     sync.Mutex
	always bool
	code   int // 401 or 407
	got    []*sip.Request
}

func (c *challenger) handle(req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	c.got = append(c.got, req)
	always, code := c.always, c.code
	c.mu.Unlock()
	hdr, answer := challengeHeaders(code)
	if always || req.GetHeader(answer) == nil {
		res := sip.NewResponseFromRequest(req, code, "Authenticate", nil)
		res.AppendHeader(sip.NewHeader(hdr, `Digest realm="gw-test", nonce="abc123", algorithm=MD5, qop="auth"`))
		tx.Respond(res)
		return
	}
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

func (c *challenger) requests() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.got...)
}

var testCredentials = []config.Credential{
	{Realm: "elsewhere", Username: "wrong", Password: "nope"},
	{Realm: "gw-test", Username: "gwuser", Password: "secret"},
}

// An INVITE challenged again after our answer is not answered a second time: the setup fails with 403
// (SPEC §5), after exactly two INVITEs, the second with the credential of the challenge's realm.
func TestInviteChallengeAnsweredOnce(t *testing.T) {
	for _, code := range []int{401, 407} {
		t.Run(itoa(code), func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
			alice := testpeer.NewPhone(t, "auth-alice")
			ch := &challenger{always: true, code: code}
			addr := testpeer.NewUA(t, "challenger", func(srv *sipgo.Server, _ *sipgo.Client, _ string) { srv.OnInvite(ch.handle) })
			alice.Send(h.udp(), "sip:bob@"+addr, "text/plain", "hi")
			e := h.events.waitKind(t, event.SetupFailed)
			if e.Code != 403 {
				t.Fatalf("setup failed with %d %s, want 403", e.Code, e.Reason)
			}
			got := ch.requests()
			if len(got) != 2 {
				t.Fatalf("%d INVITEs, want 2 (one answer per challenge, no loop)", len(got))
			}
			_, answer := challengeHeaders(code)
			a := got[1].GetHeader(answer)
			if a == nil || !strings.Contains(a.Value(), `username="gwuser"`) || !strings.Contains(a.Value(), `realm="gw-test"`) {
				t.Fatalf("second INVITE %s: %v", answer, a)
			}
			if got[0].CallID().Value() != got[1].CallID().Value() || got[1].CSeq().SeqNo != got[0].CSeq().SeqNo+1 {
				t.Fatal("the answer must keep the Call-ID and advance the CSeq")
			}
		})
	}
}

// A MESSAGE to the page-mode side challenged once is answered once and delivered.
func TestMessageChallengeAnswered(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Credentials = testCredentials })
	ch := &challenger{code: 407}
	alice := testpeer.NewPhoneWith(t, "auth-alice", testpeer.PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		ch.handle(req, tx)
		return req.GetHeader("Proxy-Authorization") != nil
	}})
	bob := testpeer.NewClient(t, "auth-bob")
	alice.Send(h.udp(), bob.URI, "text/plain", "hi")
	cs := bob.WaitInvite()
	cs.Recv()
	if r := cs.Send("text/plain", "back"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "back" {
		t.Fatalf("got %q", m.Body())
	}
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToSIP && e.Direction != event.ToMSRP {
		t.Fatalf("event %+v", e)
	}
	if n := len(ch.requests()); n != 2 {
		t.Fatalf("%d MESSAGEs, want 2", n)
	}
}

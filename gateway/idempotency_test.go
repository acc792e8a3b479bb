package gateway

import (
	"testing"

	"github.com/msrpgw/msrpgw/config"
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

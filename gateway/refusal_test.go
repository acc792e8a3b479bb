package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

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

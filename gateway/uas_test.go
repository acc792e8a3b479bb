package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
)

// rawInvite is an INVITE from u to the gateway's UDP listener with activeOffer, Call-ID callID, CSeq 5 and
// extra headers (lines ending in \n).
func rawInvite(u *rawUDP, h *harness, callID, extra string) string {
	ruri := "sip:alice@" + h.udp()
	return fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\nMax-Forwards: 70\n"+
		"From: <sip:bob@127.0.0.1>;tag=b1\nTo: <%s>\nCall-ID: %s\nCSeq: 5 INVITE\nContact: <sip:bob@%s>\n%s"+
		"Content-Type: application/sdp\nContent-Length: %d\n\n%s",
		ruri, u.addr(), callID, ruri, callID, u.addr(), extra, len(activeOffer), activeOffer)
}

// An INVITE requiring an extension the gateway does not support (100rel, RFC 3262, or any unknown option
// tag) gets 420 Bad Extension with an Unsupported header listing them, and sets up no session (RFC 3261
// §8.2.2.3). Answered 200, the peer would expect reliable provisionals, or whatever the extension says, that
// never come.
func TestInviteRequiringExtensionGets420(t *testing.T) {
	h := newHarness(t, shortSetup)
	phone := newRawUDP(t)
	for i, c := range []struct{ require, unsupported string }{
		{"Require: 100rel\n", "100rel"},
		{"Require: 100rel, x-unknown\n", "100rel, x-unknown"},
		{"Require: 100rel\nRequire: foo\n", "100rel, foo"},
	} {
		res := phone.exchange(h.udp(), rawInvite(phone, h, fmt.Sprintf("require-%d", i), c.require))
		if res.StatusCode != 420 {
			t.Fatalf("%q: INVITE answered %d %s, want 420", c.require, res.StatusCode, res.Reason)
		}
		if u := res.GetHeader("Unsupported"); u == nil || u.Value() != c.unsupported {
			t.Fatalf("%q: 420 with Unsupported %v, want %q", c.require, u, c.unsupported)
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions from refused INVITEs", n)
	}
	// Supported names what the peer can do, not what it needs: no refusal.
	res := phone.exchange(h.udp(), rawInvite(phone, h, "supported", "Supported: 100rel, timer\n"))
	if res.StatusCode != 200 {
		t.Fatalf("INVITE with Supported answered %d %s, want 200", res.StatusCode, res.Reason)
	}
}

// A re-INVITE or a BYE requiring an unsupported extension gets 420 too, and the session stays.
func TestInDialogRequestRequiringExtensionGets420(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
	phone := newRawUDP(t)
	first := inviteFrom(phone, h, "sip:bob@"+phone.addr())
	head := fmt.Sprintf("%s SIP/2.0\nMax-Forwards: 70\nFrom: <sip:bob@127.0.0.1>;tag=b1\nCall-ID: indialog-%s\n%s\n",
		first.Contact().Address.String(), phone.addr(), first.To().String())
	via := "Via: SIP/2.0/UDP " + phone.addr() + ";branch=z9hG4bK-"
	for _, req := range []string{
		"INVITE " + head + via + "reinv\nCSeq: 6 INVITE\nRequire: 100rel\nContact: <sip:bob@" + phone.addr() + ">\nContent-Length: 0\n\n",
		"BYE " + head + via + "bye\nCSeq: 7 BYE\nRequire: x-unknown\nContent-Length: 0\n\n",
	} {
		res := phone.exchange(h.udp(), req)
		if res.StatusCode != 420 || res.GetHeader("Unsupported") == nil {
			t.Fatalf("answered %d %s, Unsupported %v, want 420 with one", res.StatusCode, res.Reason, res.GetHeader("Unsupported"))
		}
	}
	if n := len(h.gw.Sessions()); n != 1 {
		t.Fatalf("%d sessions, want the one the refused requests left alone", n)
	}
}

package gateway

import (
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file tests what depends on the source address of a request (sip.trusted, per-source bounds): phones
// bound to other loopback addresses (127.0.0.2 …, testpeer.PhoneConfig.Host).

// sip.trusted: a MESSAGE or INVITE from a source outside it gets 403 and is counted; trusted sources are
// served as before.
func TestUntrustedSourceRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.SIP.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	chat := startSideChat(t, h)
	mallory := testpeer.NewPhoneWith(t, "mallory", testpeer.PhoneConfig{Host: "127.0.0.2"})
	bob := testpeer.NewClient(t, "trusted-bob")

	res := mallory.Send(h.udp(), bob.URI, "text/plain", "let me in")
	if res.StatusCode != 403 {
		t.Fatalf("MESSAGE from 127.0.0.2: got %d %s, want 403", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.RequestRefused); e.Code != 403 {
		t.Fatalf("RequestRefused event with code %d", e.Code)
	}

	// An INVITE from the same source: 403 too.
	inv, err := testpeer.NewRequest(sip.INVITE, mallory.URI, bob.URI, "application/sdp", []byte("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	inv.AppendHeader(&sip.ContactHeader{Address: inv.From().Address})
	inv.SetDestination(h.udp())
	res, err = doReq(mallory.SIPClient(), inv)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 403 {
		t.Fatalf("INVITE from 127.0.0.2: got %d %s, want 403", res.StatusCode, res.Reason)
	}
	if n := h.events.count(event.RequestRefused); n != 2 {
		t.Fatalf("%d refusals counted, want 2", n)
	}
	select {
	case <-bob.Invites():
		t.Fatal("an untrusted MESSAGE set up a session")
	default:
	}
	chat.exchange()
}

// The default sip.trusted is loopback only, which covers 127.0.0.2.
func TestDefaultTrustedIsLoopback(t *testing.T) {
	h := newHarness(t, nil)
	carol := testpeer.NewPhoneWith(t, "carol2", testpeer.PhoneConfig{Host: "127.0.0.2"})
	bob := testpeer.NewClient(t, "loop-bob")
	if res := carol.Send(h.udp(), bob.URI, "text/plain", "hi"); res.StatusCode != 202 {
		t.Fatalf("got %d %s, want 202", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
}

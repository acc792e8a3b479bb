package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file is SIP input the transport must not lose (SPEC §4, §8): datagrams of any size a UDP datagram
// can have, requests whose From or To does not parse, and answers too long for the request rule of RFC 3261
// §18.1.1.

// A MESSAGE over UDP is answered whatever its size: sipgo's read buffer holds any datagram, so one of
// 32 KiB and more is not truncated and dropped. Over gateway.max_message_size it gets 413, under it is
// accepted.
func TestLargeMessageOverUDPAnswered(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "large-bob")
	alice := newRawUDP(t)
	max := int(h.cfg.Gateway.MaxMessageSize)
	if max != 32768 {
		t.Fatalf("the cases assume the default gateway.max_message_size 32768, have %d", max)
	}
	cases := []struct {
		body int
		want int
	}{
		{max - 1, 202},
		{32768, 202}, // sipgo's default read buffer, which truncated the datagram
		{max + 1, 413},
	}
	for i, c := range cases {
		raw := message(bob.URI, alice.addr(), fmt.Sprintf("z9hG4bKlarge%d", i), "sip:large-alice@127.0.0.1",
			fmt.Sprintf("large-%d", i), "text/plain", strings.Repeat("x", c.body))
		if res := alice.exchange(h.udp(), raw); res.StatusCode != c.want {
			t.Fatalf("body of %d bytes (datagram of %d): %d %s, want %d", c.body, len(raw), res.StatusCode, res.Reason, c.want)
		}
	}
	cs := bob.WaitInvite()
	for _, want := range []int{max - 1, 32768} {
		if m := cs.Recv(); len(m.Body) != want {
			t.Fatalf("an accepted MESSAGE arrived with %d bytes, want %d", len(m.Body), want)
		}
	}
}

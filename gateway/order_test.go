package gateway

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// A burst of MESSAGEs written back to back on one UDP socket or TCP connection, each its own transaction and
// none waiting for the previous answer (as phones do), reaches the MSRP side in the order the gateway received
// them — although sipgo runs every request in its own goroutine. Raw sockets make the wire order certain.
func TestBurstKeepsArrivalOrder(t *testing.T) {
	// UDP MESSAGEs are taken by the transport read filter, TCP ones by the transport-layer hook, both on the
	// connection's reader goroutine (udpintake.go). Both must keep the order of arrival.
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			h := newHarness(t, nil)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			alice.Send(h.udp(), bob.URI, "text/plain", "warm-up")
			cs := bob.WaitInvite()
			cs.Recv()

			conn, err := net.Dial(network, h.gw.SIPAddr(network))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			go func() { // drain the answers
				buf := make([]byte, 4096)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
				}
			}()
			local := conn.LocalAddr().String()
			const n = 400
			for i := 0; i < n; i++ {
				body := fmt.Sprintf("burst %d", i)
				msg := fmt.Sprintf("MESSAGE %s SIP/2.0\r\n"+
					"Via: SIP/2.0/%s %s;branch=z9hG4bK-burst-%d\r\n"+
					"From: <%s>;tag=burst%d\r\n"+
					"To: <%s>\r\n"+
					"Call-ID: burst-%d@%s\r\n"+
					"CSeq: 1 MESSAGE\r\n"+
					"Max-Forwards: 70\r\n"+
					"Content-Type: text/plain\r\n"+
					"Content-Length: %d\r\n\r\n%s",
					bob.URI, strings.ToUpper(network), local, i, alice.URI, i, bob.URI, i, local, len(body), body)
				if _, err := conn.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				if i%25 == 24 {
					time.Sleep(2 * time.Millisecond) // bursts of 25: no drops in the kernel's socket buffer
				}
			}
			// The SENDs must come in strictly increasing order (a datagram the kernel dropped would be a gap,
			// not a reorder); and with the pacing above, all of them.
			last := -1
			for got := 0; got < n; got++ {
				m := cs.Recv()
				var i int
				if _, err := fmt.Sscanf(string(m.Body), "burst %d", &i); err != nil {
					t.Fatalf("unexpected SEND %q", m.Body)
				}
				if i <= last {
					t.Fatalf("SEND carrying burst %d came after burst %d: the gateway reordered the burst", i, last)
				}
				last = i
			}
		})
	}
}

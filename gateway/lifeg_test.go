package gateway

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// The MSRP connection the gateway made during a MESSAGE-first setup is lost before its first SEND is answered
// (the peer resets it on reading the SEND): the session never came up, so the setup failed (SPEC §3.1 step
// 6): setup_failed with 480, one setup-failed notification, and the MESSAGE fails with 480 once, not as the
// loss of an established session.
func TestConnLostBeforeFirstSendAnsweredFailsSetup(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := bufio.NewReader(c)
				for { // read the gateway's bodiless SEND to its end line, then close without answering
					line, err := rd.ReadString('\n')
					if err != nil || strings.HasPrefix(line, "-------") {
						return
					}
				}
			}()
		}
	}()
	alice := testpeer.NewPhone(t, "cl-alice")
	bob := testpeer.NewClient(t, "cl-bob")
	bob.EditMedia(func(m *sdp.Media) {
		m.Setup = sdp.SetupPassive
		m.Path = []string{"msrp://" + ln.Addr().String() + "/resets;tcp"}
	})
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "lost before up"); res.StatusCode != 480 {
		t.Fatalf("MESSAGE answered %d %s, want 480", res.StatusCode, res.Reason)
	}
	e := h.events.waitKind(t, event.SetupFailed)
	if e.Code != 480 {
		t.Fatalf("setup_failed: %d %q, want 480", e.Code, e.Reason)
	}
	if body := string(alice.Recv().Body()); !strings.HasPrefix(body, "Failed to establish session, error: 480") {
		t.Fatalf("notification %q, want the setup-failed one", body)
	}
	alice.Quiet(300 * time.Millisecond)
}

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

// Two INVITEs for a key race while its MESSAGE-first session holds a queued message: the first INVITE's
// session replaces the MESSAGE-first one, the second's replaces the first's, and the two replacements run in
// either order. When the second runs first, the message that the first INVITE's session, ending already, is
// handed moves on to the second's (SPEC §3.2 step 3: queued messages move to the new session), instead of
// failing.
func TestRacingReplacementsMoveQueuedMessageToNewest(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 20 * time.Second })
	alice := testpeer.NewPhone(t, "rr-alice")
	bob := testpeer.NewClient(t, "rr-bob")
	bob.SetAnswer(0, "") // the gateway's INVITE hangs: the message stays queued
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "queued during setup"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE answered %d", res.StatusCode)
	}
	key := bob.URI + ":" + alice.URI
	s0 := h.gw.table.Get(key)
	if s0 == nil || s0.queued.Load() != 1 {
		t.Fatalf("no MESSAGE-first session holding the message for %q", key)
	}
	first := newSession(h.gw, key, originInvite)
	second := newSession(h.gw, key, originInvite)
	h.gw.table.Put(second)
	h.gw.replace(first, second) // the second INVITE's replacement runs first
	h.gw.replace(s0, first)
	second.mu.Lock()
	n := len(second.queue)
	second.mu.Unlock()
	if n != 1 || second.queued.Load() != 1 {
		t.Fatalf("newest session holds %d message(s), counted %d, want the one queued during setup", n, second.queued.Load())
	}
	if m, ok := alice.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("alice told %q, want the message carried on", m.Body())
	}
	if n := h.events.count(event.MessageFailed); n != 0 {
		t.Fatalf("%d message_failed, want none", n)
	}
	h.gw.endSession(second, "admin", outcomeSessionEnded, false)
}

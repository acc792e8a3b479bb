package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file follows a session's life under the races an operator's traffic makes: ends during setup, timers,
// replacement.

// tryNext is next, but returns nil when no request other than a retransmission of inv comes within d.
func (u *rawUDP) tryNext(inv *sip.Request, d time.Duration) *sip.Request {
	u.t.Helper()
	buf := make([]byte, 65535)
	for deadline := time.Now().Add(d); ; {
		u.pc.SetReadDeadline(deadline)
		n, _, err := u.pc.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return nil
			}
			u.t.Fatal(err)
		}
		msg, err := newSIPParser().ParseSIP(bytes.Clone(buf[:n]))
		if err != nil {
			u.t.Fatal(err)
		}
		req, ok := msg.(*sip.Request)
		if !ok || (req.IsInvite() && req.CSeq().SeqNo == inv.CSeq().SeqNo) {
			continue
		}
		return req
	}
}

// answeredNeverConnects starts a session from a MESSAGE of alice's towards a bare UDP peer that answers the
// gateway's INVITE 200 with a=setup:active, so that it is the one to connect, and never connects: the session
// stays setting up, its dialog confirmed, waiting for the peer's MSRP connection. It returns the peer, the
// INVITE, the gateway's address and the session's key once the ACK came.
func answeredNeverConnects(t *testing.T, h *harness) (bob *rawUDP, inv *sip.Request, gw net.Addr, key string) {
	t.Helper()
	bob, inv, gw = answerNeverConnecting(t, h)
	list := h.gw.Sessions()
	if len(list) != 1 || list[0].State != "setting-up" {
		t.Fatalf("sessions %+v, want one setting up", list)
	}
	return bob, inv, gw, list[0].Key
}

// answerNeverConnecting is answeredNeverConnects up to the ACK, whatever became of the session meanwhile.
func answerNeverConnecting(t *testing.T, h *harness) (bob *rawUDP, inv *sip.Request, gw net.Addr) {
	t.Helper()
	alice := testpeer.NewPhone(t, "alice")
	bob = newRawUDP(t)
	alice.Send(h.udp(), "sip:bob@"+bob.addr(), "text/plain", "queued during setup")
	m, gw := bob.read()
	inv, ok := m.(*sip.Request)
	if !ok || !inv.IsInvite() {
		t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
	}
	inv.SetSource(gw.String())
	answer := &sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{"msrp://127.0.0.1:9/never;tcp"}, AcceptTypes: []string{"text/plain"}, Setup: sdp.SetupActive}
	res := sip.NewSDPResponseFromRequest(inv, answer.Marshal(1, 1))
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: bob.pc.LocalAddr().(*net.UDPAddr).Port}})
	bob.send(gw, res)
	if ack := bob.next(inv); !ack.IsAck() {
		t.Fatalf("after the 200 the peer got %s, want the ACK", ack.StartLine())
	}
	return bob, inv, gw
}

// An operator ending a session whose INVITE was answered but whose MSRP side is not bound yet (SPEC §3.1 step
// 6: after the 2xx, BYE) sends one BYE on its dialog, not one for the end and another for the setup it cut.
func TestEndAfterAnswerDuringBindSendsOneBye(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 5 * time.Second })
	bob, inv, gw, key := answeredNeverConnects(t, h)
	if !h.gw.EndSession(key) {
		t.Fatalf("EndSession(%q) found no session", key)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "admin" {
		t.Fatalf("session ended with reason %q, want admin", e.Reason)
	}
	var byes []uint32
	// The BYE must come (waitFor bounds the wait); a second one, within a second after it.
	for req := bob.tryNext(inv, waitFor); req != nil; req = bob.tryNext(inv, time.Second) {
		if req.Method != sip.BYE {
			t.Fatalf("peer got %s, want only BYE", req.StartLine())
		}
		byes = append(byes, req.CSeq().SeqNo)
		req.SetSource(gw.String())
		bob.send(gw, sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	if len(byes) != 1 {
		t.Fatalf("peer got BYEs with CSeq %v, want one BYE", byes)
	}
	if n := h.events.count(event.SetupFailed); n != 0 {
		t.Fatalf("%d setup_failed for a session an operator ended", n)
	}
}

// A session ended as its setup ACKs the peer's 2xx (an operator, a timer: here, just before the ACK is
// written) still gets its BYE once the ACK is out. sipgo sends no BYE on a dialog it has not confirmed, which
// it does only after writing the ACK: the BYE, in the background, used to try before that and was dropped, and
// the peer, ACKed, kept a dialog nobody ended (TestEndAfterAnswerDuringBindSendsOneBye failed so, one time in
// forty: its EndSession, on seeing the ACK, came before sipgo had confirmed the dialog).
func TestEndAsSetupACKsSendsBye(t *testing.T) {
	h := newHarnessBefore(t, func(c *config.Config) { c.Gateway.SetupTimeout = 5 * time.Second }, Options{}, func(g *Gateway) {
		g.beforeACK = func(s *Session) {
			if !g.EndSession(s.Key()) {
				t.Errorf("EndSession(%q) before the ACK found no session", s.Key())
			}
			// The BYE gets the time to go out first, as it did when the ACK was late (it waits for the ACK now).
			for deadline := time.Now().Add(200 * time.Millisecond); g.byes.Load() != 0 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
		}
	})
	bob, inv, gw := answerNeverConnecting(t, h)
	req := bob.tryNext(inv, waitFor)
	if req == nil || req.Method != sip.BYE {
		t.Fatalf("after the ACK of a session ended as it was sent, the peer got %v, want BYE", req)
	}
	req.SetSource(gw.String())
	bob.send(gw, sip.NewResponseFromRequest(req, 200, "OK", nil))
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "admin" {
		t.Fatalf("session ended with reason %q, want admin", e.Reason)
	}
}

// Each timer of SPEC §3.3 counts only its own events: message_timeout MESSAGEs from the page-mode side,
// session_timeout SENDs from the session-mode side, and max_duration none at all. Traffic every 100 ms that
// the timer does not count keeps the session going well past it; the timer ends the session on time all the
// same.
func TestTimersCountOnlyTheirOwnEvents(t *testing.T) {
	cases := []struct {
		name          string
		set           func(*config.Config)
		pages, sends  bool // traffic from the page-mode side, from the session-mode side
		reason        string
		within, limit time.Duration
	}{
		{"SENDs do not hold off message_timeout", func(c *config.Config) {
			c.Gateway.MessageTimeout = 400 * time.Millisecond
			c.Gateway.SessionTimeout = 10 * time.Second
		}, false, true, "message_timeout", 400 * time.Millisecond, 1200 * time.Millisecond},
		{"MESSAGEs do not hold off session_timeout", func(c *config.Config) {
			// Not shorter than the run: the MESSAGEs holding it off is TestMessageTimeoutCountsFromLastMessage's
			// to check, and a loaded run that held them up 300 ms ended the session by message_timeout here.
			c.Gateway.MessageTimeout = 10 * time.Second
			c.Gateway.SessionTimeout = 700 * time.Millisecond
		}, true, false, "session_timeout", 700 * time.Millisecond, 1500 * time.Millisecond},
		{"max_duration counts from the start, whatever comes", func(c *config.Config) {
			c.Gateway.MaxDuration = 700 * time.Millisecond
		}, true, true, "max_duration", 700 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.set)
			alice := testpeer.NewPhone(t, "alice")
			bob := testpeer.NewClient(t, "bob")
			created := time.Now()
			alice.Send(h.udp(), bob.URI, "text/plain", "start")
			cs := bob.WaitInvite()
			cs.Recv()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for deadline := time.Now().Add(3 * time.Second); h.events.count(event.SessionEnded) == 0 && time.Now().Before(deadline); <-tick.C {
				if c.pages {
					alice.Send(h.udp(), bob.URI, "text/plain", "from the page-mode side")
				}
				if c.sends {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					cs.TrySend(ctx, &msrp.Outgoing{ContentType: "text/plain", Body: []byte("from the session-mode side")})
					cancel()
				}
			}
			e := h.events.waitKind(t, event.SessionEnded)
			if e.Reason != c.reason {
				t.Fatalf("ended by %q, want %q", e.Reason, c.reason)
			}
			if took := e.Time.Sub(created); took < c.within || took > c.limit {
				t.Fatalf("%s ended the session %v after it was created, want %v (at most %v)", c.reason, took, c.within, c.limit)
			}
		})
	}
}

// settingUpFromInvite has bob INVITE alice through the gateway with a=setup:active, so that bob is the one to
// connect, and never connect: the session stays setting up, its handler waiting for bob's MSRP connection.
func settingUpFromInvite(t *testing.T, h *harness) (alice *testpeer.Phone, bob *testpeer.Client, key string) {
	t.Helper()
	alice = testpeer.NewPhone(t, "alice")
	bob = testpeer.NewClient(t, "bob")
	cs := bob.NewSession()
	inviteByHand(t, h, bob, alice.URI, "application/sdp", bob.Media(cs, sdp.SetupActive).Marshal(1, 1))
	list := h.gw.Sessions()
	if len(list) != 1 || list[0].State != "setting-up" {
		t.Fatalf("sessions %+v, want one setting up", list)
	}
	return alice, bob, list[0].Key
}

// waitNoGoroutine waits up to d for no goroutine of ours to run fn (a function name as in a stack trace).
func waitNoGoroutine(t *testing.T, fn string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		var left []string
		for _, g := range ourGoroutines() {
			if strings.Contains(g, fn) {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) still in %s %v after the session ended:\n%s", len(left), fn, d, strings.Join(left, "\n\n"))
		}
	}
}

// A session an INVITE started, ended while it waits for the peer's MSRP connection (by an operator, or by a
// newer INVITE for its key), stops waiting: its handler returns at once, not at setup_timeout.
func TestEndDuringInviteSetupStopsIt(t *testing.T) {
	for _, how := range []string{"admin", "replaced"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 10 * time.Second })
			alice, bob, key := settingUpFromInvite(t, h)
			switch how {
			case "admin":
				if !h.gw.EndSession(key) {
					t.Fatalf("EndSession(%q) found no session", key)
				}
			case "replaced":
				bob.Call(h.udp(), alice.URI, "actpass")
			}
			if e := h.events.waitKind(t, event.SessionEnded); e.Reason != how {
				t.Fatalf("session ended with reason %q, want %q", e.Reason, how)
			}
			waitNoGoroutine(t, "(*Gateway).onInvite", 2*time.Second)
		})
	}
}

// An operator ending the session of a key over and over while INVITEs for it come in ends some before their
// 200 is out, some between 200 and ACK, some during the MSRP setup, some up: each INVITE is refused or
// answered (and then ended with BYE), the gateway carries on, and nothing is left once the ends stop. Ending
// one before its 200 used to crash the process (sipgo's WriteBye on a dialog without a response).
func TestEndSessionRacingInvites(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	key := bob.URI + ":" + alice.URI
	stop := keepEnding(h, key, 500*time.Microsecond, nil)
	answered := 0
	for i := 0; i < 300; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		_, err := bob.Invite(ctx, h.udp(), alice.URI, "actpass")
		cancel()
		switch code := testpeer.InviteCode(err); {
		case err == nil:
			answered++
		case code != 480 && code != 0:
			t.Fatalf("INVITE %d: %v, want it answered, or refused with 480", i, err)
		}
	}
	stop()
	for deadline := time.Now().Add(waitFor); len(h.gw.Sessions()) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sessions left: %+v", h.gw.Sessions())
		}
	}
	t.Logf("%d of 300 INVITEs answered", answered)
}

// keepEnding ends the session of key over and over, a random pause of up to maxPause apart, until the
// returned stop, which also ends it once more after the last. It takes whatever comes on drain meanwhile (the
// sessions a test client answered, not looked at; nil: nothing).
func keepEnding(h *harness, key string, maxPause time.Duration, drain <-chan *testpeer.ClientSession) (stop func()) {
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		for {
			select {
			case <-quit:
				return
			case <-drain:
			default:
				h.gw.EndSession(key)
				time.Sleep(time.Duration(rand.Int64N(int64(maxPause))))
			}
		}
	}()
	return func() {
		close(quit)
		<-ended
		h.gw.EndSession(key)
	}
}

// dialogsLeft returns how many dialogs the gateway still routes in-dialog requests to.
func dialogsLeft(g *Gateway) int {
	n := 0
	g.dialogs.Range(func(_, _ any) bool { n++; return true })
	return n
}

// The same for sessions MESSAGEs start: ends racing their setups, at every step of it, leave no session and no
// dialog behind; every dialog the gateway's INVITEs made is ended.
func TestEndSessionRacingMessageSetups(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	stop := keepEnding(h, bob.URI+":"+alice.URI, 2*time.Millisecond, bob.Invites())
	for i := 0; i < 200; i++ {
		alice.Send(h.udp(), bob.URI, "text/plain", "racing")
	}
	stop()
	for deadline := time.Now().Add(waitFor); len(h.gw.Sessions()) != 0 || dialogsLeft(h.gw) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			var left []string
			h.gw.dialogs.Range(func(_, v any) bool {
				s := v.(*Session)
				s.mu.Lock()
				left = append(left, fmt.Sprintf("%s call-id %s: %s, uac %t, bye sent %t", s.origin, s.callID, s.st, s.uac != nil, s.byeSent))
				s.mu.Unlock()
				return true
			})
			t.Fatalf("%d sessions, %d dialogs left: %v", len(h.gw.Sessions()), dialogsLeft(h.gw), left)
		}
	}
}

// A session being set up from the MESSAGE side whose INVITE got a provisional response, ended by an operator
// or replaced by the peer's own INVITE for the key, has its INVITE cancelled (SPEC §3.2 step 3, §3.3): CANCEL,
// no BYE, and no setup_failed.
func TestEndAfterProvisionalCancels(t *testing.T) {
	for _, how := range []string{"admin", "replaced"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, func(c *config.Config) { c.Gateway.SetupTimeout = 30 * time.Second })
			alice := testpeer.NewPhone(t, "alice")
			bob := newRawUDP(t)
			bobURI := "sip:bob@" + bob.addr()
			alice.Send(h.udp(), bobURI, "text/plain", "queued during setup")
			m, gw := bob.read()
			inv, ok := m.(*sip.Request)
			if !ok || !inv.IsInvite() {
				t.Fatalf("peer got %s, want the gateway's INVITE", firstLine(m))
			}
			inv.SetSource(gw.String())
			bob.send(gw, sip.NewResponseFromRequest(inv, 180, "Ringing", nil))
			time.Sleep(100 * time.Millisecond) // the 180 is in
			switch how {
			case "admin":
				if !h.gw.EndSession(bobURI + ":" + alice.URI) {
					t.Fatal("EndSession found no session")
				}
			case "replaced":
				other := testpeer.NewClient(t, "bob-other")
				cs := other.NewSession()
				req, err := testpeer.NewRequest(sip.INVITE, bobURI, alice.URI, "application/sdp", other.Media(cs, sdp.SetupActive).Marshal(1, 1))
				if err != nil {
					t.Fatal(err)
				}
				inviteAck(t, h, other, req)
			}
			if e := h.events.waitKind(t, event.SessionEnded); e.Reason != how {
				t.Fatalf("session ended with reason %q, want %q", e.Reason, how)
			}
			cancel := bob.next(inv)
			if !cancel.IsCancel() || cancel.CallID().Value() != inv.CallID().Value() {
				t.Fatalf("after the end the peer got %s, want the INVITE's CANCEL", cancel.StartLine())
			}
			cancel.SetSource(gw.String())
			bob.send(gw, sip.NewResponseFromRequest(cancel, 200, "OK", nil))
			bob.send(gw, sip.NewResponseFromRequest(inv, 487, "Request Terminated", nil))
			if req := bob.tryNext(inv, 500*time.Millisecond); req != nil && !req.IsAck() {
				t.Fatalf("after the 487 the peer got %s, want nothing but its ACK", req.StartLine())
			}
			if n := h.events.count(event.SetupFailed); n != 0 {
				t.Fatalf("%d setup_failed for a setup cancelled by its end", n)
			}
		})
	}
}

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

// SPEC §7 GET /readyz; Gateway.Ready's own contract: "whether the gateway is serving and not draining". A
// gateway whose Start failed (its SIP port taken) serves nothing, yet Ready says true: started is set at the
// top of Start, before any listener is open, and stays set when Start fails. (Between that moment and the
// listeners being open Ready is also true.)
func TestReadyFalseWhenStartFailed(t *testing.T) {
	h := newHarness(t, nil)
	cfg := testConfig()
	cfg.SIP.Listen = []config.Listen{{Network: "tcp", Addr: h.gw.SIPAddr("tcp")}} // taken
	gw, err := New(cfg, Options{Logger: testpeer.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if err := gw.Start(); err == nil {
		t.Fatal("Start succeeded on a SIP address already in use")
	}
	if gw.Ready() {
		t.Fatal("Ready() is true for a gateway whose Start failed and that listens on nothing")
	}
}

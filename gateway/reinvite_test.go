package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/certs"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// A late-offer INVITE (no SDP): the gateway offers in its 200 and takes the answer from the ACK (SPEC §3.2 step 2).
func TestLateOfferInvite(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")

	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil) // no SDP: a late offer
	if err != nil {
		t.Fatal(err)
	}
	offer, dlg := inviteAnswered(t, h, bob, req)
	if offer.Setup != "actpass" {
		t.Fatalf("offer a=setup:%s, want actpass", offer.Setup)
	}
	// Answer passive in the ACK: the gateway (the offerer) connects to us.
	cs := bob.NewSession()
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	cs.MSRP.SetPeerPath(path)
	ackWith(t, dlg, bob.Media(cs, "passive"))
	select {
	case <-cs.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway never connected after the ACK's answer")
	}
	if r := cs.Send("text/plain", "late offer works"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	if got := string(alice.Recv().Body()); got != "late offer works" {
		t.Fatalf("got %q", got)
	}
}

// A re-INVITE that changes the peer's path makes the gateway, when it is the active side, connect to the new
// path (SPEC §3.2 step 6); messages then flow on the new MSRP session.
func TestReinvitePathChangeReconnects(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway is active
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	if got := string(cs.Recv().Body); got != "before" {
		t.Fatalf("got %q", got)
	}
	moved := bob.NewSession() // bob's chat moves to a new MSRP session (new path)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, cs.ServerDialog().InviteRequest.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(bob.Media(moved, "passive").Marshal(1, 2))
	res, err := cs.ServerDialog().Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	path, _ := msrp.ParsePath(strings.Join(ans.Path, " "))
	moved.MSRP.SetPeerPath(path)
	select {
	case <-moved.MSRP.Bound():
	case <-ctx.Done():
		t.Fatal("the gateway did not connect to the new path")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// A SEND written and not yet answered when a re-INVITE moves the peer's path (the gateway is the active side)
// keeps its connection until the answer comes: the MESSAGE gets the peer's 200, and the message is not sent
// again on the new path (SPEC §5: never delivered twice, nothing accepted lost).
func TestReinviteAnswerToMovedSendArrives(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.Message.ReplyWait = 8 * time.Second
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway is active
	alice.Send(h.udp(), bob.URI, "text/plain", "first")
	cs := bob.WaitInvite()
	cs.Recv()
	cs.SetReplyDelay(500 * time.Millisecond)
	resc := sendTaken(t, h, alice, bob.URI, "in flight")
	if got := string(cs.Recv().Body); got != "in flight" {
		t.Fatalf("got %q", got)
	}
	moved := bob.NewSession() // the re-INVITE goes out while bob still holds his answer
	moveTo(t, moved, reinvite(t, cs, bob.Media(moved, sdp.SetupPassive), 2))
	if res := finalResponse(t, resc); res.StatusCode != 200 {
		t.Fatalf("MESSAGE whose SEND was answered on the old connection: %d %s, want 200", res.StatusCode, res.Reason)
	}
	if m, ok := moved.TryRecv(300 * time.Millisecond); ok {
		t.Fatalf("the new path got %q again", m.Body)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "after"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the move: %d", res.StatusCode)
	}
	if m := moved.Recv(); string(m.Body) != "after" {
		t.Fatalf("got %q on the new path", m.Body)
	}
}

// reinvite sends a re-INVITE offering m on cs's dialog (whichever side set it up) and returns the gateway's
// SDP answer.
func reinvite(t *testing.T, cs *testpeer.ClientSession, m *sdp.Media, version uint64) *sdp.Media {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var res *sip.Response
	var err error
	if d := cs.ServerDialog(); d != nil {
		req := sip.NewRequest(sip.INVITE, d.InviteRequest.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(m.Marshal(1, version))
		res, err = d.Do(ctx, req)
	} else {
		res = reinviteRaw(t, cs, m.Marshal(2, version))
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatalf("re-INVITE answer: %v", err)
	}
	return ans
}

// moveTo points a new session of the client at the gateway's path in ans.
func moveTo(t *testing.T, moved *testpeer.ClientSession, ans *sdp.Media) {
	t.Helper()
	path, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		t.Fatal(err)
	}
	moved.MSRP.SetPeerPath(path)
}

// A re-INVITE's answer says active or passive, never actpass (RFC 4145 §4.1, RFC 6135): to actpass the
// gateway keeps its role, so the side that connected stays active and the connection stays in use; a
// re-offer that says active makes it passive. Session set up from the MESSAGE side (our offer said actpass).
func TestReinviteAnswerSetup(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway connected
	alice.Send(h.udp(), bob.URI, "text/plain", "one")
	cs := bob.WaitInvite()
	cs.Recv()
	for i, tc := range []struct{ offer, want string }{
		{sdp.SetupActPass, sdp.SetupActive},
		{sdp.SetupActive, sdp.SetupPassive},
	} {
		ans := reinvite(t, cs, bob.Media(cs, tc.offer), uint64(2+i))
		if ans.Setup != tc.want {
			t.Fatalf("re-offer a=setup:%s answered a=setup:%q, want %s", tc.offer, ans.Setup, tc.want)
		}
		body := "after re-offer " + tc.offer
		alice.Send(h.udp(), bob.URI, "text/plain", body)
		if got := string(cs.Recv().Body); got != body {
			t.Fatalf("got %q on the kept connection", got)
		}
	}
}

// A re-INVITE without SDP gets our offer, and an offer never says passive (RFC 6135 §4.2.2): actpass, also on
// a session where the gateway answered passive.
func TestReinviteWithoutSDPOffersActpass(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answered passive
	offer := reinviteWithoutSDP(t, cs)
	if offer.Setup != sdp.SetupActPass {
		t.Fatalf("offer in the 200 to a re-INVITE without SDP says a=setup:%q, want actpass", offer.Setup)
	}
}

// The peer is the offerer of a re-INVITE: its a=setup decides who connects, as for an INVITE. Session first,
// the gateway passive; the re-offer moves the chat to a new path and says passive: the gateway answers active
// and connects to the new path.
func TestReinviteOfferMakesUsActive(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs.Recv()
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, sdp.SetupPassive), 2)
	if ans.Setup != sdp.SetupActive {
		t.Fatalf("re-offer a=setup:passive answered a=setup:%q, want active", ans.Setup)
	}
	moveTo(t, moved, ans)
	select {
	case <-moved.MSRP.Bound():
	case <-time.After(waitFor):
		t.Fatal("the gateway did not connect to the new path")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// A re-offer without a=setup: the RFC 4145 default makes the offerer (the peer) connect, also on a session the
// gateway set up as the active side. The answer says passive and the peer's new connection carries the chat.
func TestReinviteOfferWithoutSetup(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway connected
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	cs.Recv()
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, ""), 2)
	if ans.Setup != sdp.SetupPassive {
		t.Fatalf("re-offer without a=setup answered a=setup:%q, want passive", ans.Setup)
	}
	moveTo(t, moved, ans)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := moved.MSRP.Connect(ctx); err != nil {
		t.Fatalf("connecting to the gateway's path: %v", err)
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// sendTaken sends a MESSAGE from alice to bob in the background and returns once the gateway has taken it
// for its only session (queued or sent); the MESSAGE's final response comes on the channel.
func sendTaken(t *testing.T, h *harness, alice *testpeer.Phone, bobURI, body string) <-chan *sip.Response {
	t.Helper()
	list := h.gw.Sessions()
	if len(list) != 1 {
		t.Fatalf("%d sessions, want 1", len(list))
	}
	before := list[0].MessagesToMSRP
	resc := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		res, err := alice.TrySend(ctx, h.udp(), bobURI, "text/plain", body)
		if err != nil {
			t.Errorf("MESSAGE %q: %v", body, err)
		}
		resc <- res
	}()
	deadline := time.Now().Add(waitFor)
	for {
		if list := h.gw.Sessions(); len(list) == 1 && list[0].MessagesToMSRP > before {
			return resc
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not take MESSAGE %q within %s", body, waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// finalResponse waits for a MESSAGE's final response from sendTaken.
func finalResponse(t *testing.T, resc <-chan *sip.Response) *sip.Response {
	t.Helper()
	select {
	case res := <-resc:
		if res == nil {
			t.Fatal("MESSAGE got no response")
		}
		return res
	case <-time.After(waitFor):
		t.Fatalf("MESSAGE got no response within %s", waitFor)
		return nil
	}
}

// After a re-INVITE that moves the chat to a new path with the peer as the active side, the gateway waits for
// the peer's new connection (SPEC §3.2 step 6). A MESSAGE arriving in that window is queued, as during setup,
// and sent once the peer's connection binds.
func TestReinvitePassiveWindow(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "before"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE before the re-INVITE answered %d", res.StatusCode)
	}
	cs.Recv()
	moved := bob.NewSession()
	ans := reinvite(t, cs, bob.Media(moved, sdp.SetupActive), 2)
	if ans.Setup != sdp.SetupPassive {
		t.Fatalf("re-offer a=setup:active answered a=setup:%q", ans.Setup)
	}
	moveTo(t, moved, ans)
	resc := sendTaken(t, h, alice, bob.URI, "during")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := moved.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if res := finalResponse(t, resc); res.StatusCode != 200 {
		t.Fatalf("MESSAGE in the reconnect window answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got := string(moved.Recv().Body); got != "during" {
		t.Fatalf("got %q on the new connection", got)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "after"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after the reconnect answered %d", res.StatusCode)
	}
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new connection", got)
	}
}

// The peer never makes the new connection it announced in its re-INVITE: once gateway.setup_timeout passed
// the session ends with BYE and the MESSAGE queued meanwhile fails with 480 (SPEC §5: a connection that could
// not be made).
func TestReinvitePassiveWindowTimeout(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.SetupTimeout = 300 * time.Millisecond
		c.Gateway.Message.Reply = "wait"
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass)
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs.Recv()
	moved := bob.NewSession()
	moveTo(t, moved, reinvite(t, cs, bob.Media(moved, sdp.SetupActive), 2))
	resc := sendTaken(t, h, alice, bob.URI, "never carried")
	cs.WaitBye()
	if res := finalResponse(t, resc); res.StatusCode != 480 {
		t.Fatalf("MESSAGE queued for a connection that never came answered %d %s, want 480", res.StatusCode, res.Reason)
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "msrp_failed" {
		t.Fatalf("session ended with reason %q", e.Reason)
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
}

// passiveBehindHeldProxy is client's SDP for cs answering passive, its path through a held proxy: the gateway
// connects, and its connection waits until the proxy's release.
func passiveBehindHeldProxy(t *testing.T, client *testpeer.Client, cs *testpeer.ClientSession) (*sdp.Media, *heldProxy) {
	t.Helper()
	u := cs.MSRP.LocalURI()
	proxy := newHeldProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	m := client.Media(cs, sdp.SetupPassive)
	u.Port = proxy.addr.Port
	m.Port, m.Path = u.Port, []string{u.String()}
	return m, proxy
}

// heldProxy is a TCP proxy to target whose connections are held, read from by nobody, until release: an
// MSRP connection that takes as long as the test wants to come up.
type heldProxy struct {
	addr     *net.TCPAddr
	release  chan struct{}
	accepted atomic.Int32 // connections taken so far
}

func newHeldProxy(t *testing.T, target string) *heldProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &heldProxy{addr: ln.Addr().(*net.TCPAddr), release: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	done := make(chan struct{})
	t.Cleanup(func() { close(done) }) // runs first: unblocks the pipes before wg.Wait
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				select {
				case <-p.release:
				case <-done:
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					t.Errorf("proxy: %v", err)
					return
				}
				defer up.Close()
				wg.Add(2)
				go func() {
					defer wg.Done()
					io.Copy(up, c)
					up.Close()
				}()
				go func() {
					defer wg.Done()
					<-done
					c.Close()
					up.Close()
				}()
				io.Copy(c, up)
			}()
		}
	}()
	return p
}

// When the gateway is the active side of a re-INVITE's new path it reconnects; a MESSAGE arriving while it
// connects is queued and sent once the connection is up, not failed. Over msrps, with the TLS handshake held
// by a proxy, so that the connection takes as long as the test needs.
func TestReinviteActiveReconnectQueues(t *testing.T) {
	gwPair, clientPair := newTestPair(t), newTestPair(t)
	h := newHarness(t, func(c *config.Config) {
		withMSRPS(gwPair)(c)
		c.Gateway.Message.Reply = "wait"
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := newTLSClient(t, "bob", clientPair, clientPair.fingerprint) // answers passive: the gateway connects
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	cs.Recv()
	moved := bob.NewSession()
	m, proxy := passiveBehindHeldProxy(t, bob.Client, moved)
	moveTo(t, moved, reinvite(t, cs, m, 2))
	resc := sendTaken(t, h, alice, bob.URI, "while connecting")
	close(proxy.release)
	if res := finalResponse(t, resc); res.StatusCode != 200 {
		t.Fatalf("MESSAGE during the reconnect answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got := string(moved.Recv().Body); got != "while connecting" {
		t.Fatalf("got %q on the new connection", got)
	}
}

// udp:HOST:0 and tcp:HOST:0 share one port, so the Contact reaches both transports.
func TestEphemeralListenersShareAPort(t *testing.T) {
	h := newHarness(t, nil)
	_, up, _ := net.SplitHostPort(h.gw.SIPAddr("udp"))
	_, tp, _ := net.SplitHostPort(h.gw.SIPAddr("tcp"))
	if up != tp {
		t.Fatalf("udp port %s, tcp port %s", up, tp)
	}
}

// A tls:HOST:0 listener next to udp/tcp ones gets a port of its own (it is a second TCP socket).
func TestEphemeralTLSListenerOwnPort(t *testing.T) {
	certFile, keyFile, err := certs.WriteTemp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *config.Config) {
		c.SIP.Listen = append(c.SIP.Listen, config.Listen{Network: "tls", Addr: "127.0.0.1:0"})
		c.SIP.TLS.Cert, c.SIP.TLS.Key = certFile, keyFile
	})
	_, up, _ := net.SplitHostPort(h.gw.SIPAddr("udp"))
	_, tp, _ := net.SplitHostPort(h.gw.SIPAddr("tcp"))
	_, sp, _ := net.SplitHostPort(h.gw.SIPAddr("tls"))
	if up != tp || sp == tp || sp == "" {
		t.Fatalf("udp %s tcp %s tls %s", up, tp, sp)
	}
}

// The page-mode side answers a MESSAGE while the session rebinds after a re-INVITE (up, rebinding): the IMDN and
// the success REPORT the SEND asked for wait for the rebind, as MESSAGEs do, and leave on the new connection in
// the order made, the REPORT to the peer's new path (not lost to msrp.ErrNotBound).
func TestReinviteIMDNAndReportWaitForRebind(t *testing.T) {
	h := newHarness(t, nil)
	alice, arrived, release := holdingPhone(t, "alice", 200, "OK")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"message/cpim", "text/plain"}, []string{"text/plain", "message/imdn+xml"})
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects

	first := cpim.Wrap("text/plain", []byte("hello"), cpim.WrapOptions{From: bob.URI, To: alice.URI, Now: time.Now(),
		IMDNMessageID: "imdn-1", Disposition: []string{"positive-delivery"}})
	if r := cs.SendOut(&msrp.Outgoing{ContentType: "message/cpim", Body: first.Marshal(), SuccessReport: true}); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	arrived()
	moved := bob.NewSession()
	moveTo(t, moved, reinvite(t, cs, bob.Media(moved, sdp.SetupActive), 2)) // bob will connect: rebinding
	close(release)                                                          // the IMDN and the REPORT are made now
	h.events.waitKind(t, event.MessageDelivered)
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := moved.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	m, ok := moved.TryRecv(3 * time.Second)
	if !ok {
		t.Fatal("the IMDN made during the rebind was never sent")
	}
	if c, err := cpim.Parse(m.Body); err != nil || !c.IsControl() {
		t.Fatalf("got %s %q, want the IMDN", m.ContentType, m.Body)
	}
	if r := moved.Report(); r.StatusCode != 200 {
		t.Fatalf("REPORT %d %s", r.StatusCode, r.Comment)
	}
}

// Two re-INVITEs in a row each move the peer's path, with the gateway active: the second comes while the
// gateway's connection to the first path is bound but its bodiless SEND unanswered. The second supersedes the
// first's rebind before it unbinds anything: the session follows the newest path and does not end.
func TestReinviteSecondDuringActiveRebind(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob") // answers passive: the gateway is active
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	cs.Recv()

	// The first new path: a TCP server that accepts and never answers (held until the test ends).
	moved1 := bob.NewSession()
	m1, _ := passiveBehindHeldProxy(t, bob, moved1)
	reinvite(t, cs, m1, 2)
	time.Sleep(200 * time.Millisecond) // the gateway dialled, bound, and waits for its bodiless SEND's answer

	moved2 := bob.NewSession() // the second new path: a real one
	moveTo(t, moved2, reinvite(t, cs, bob.Media(moved2, sdp.SetupPassive), 3))
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	select {
	case <-moved2.MSRP.Bound():
	case <-cs.ByeReceived():
		t.Fatalf("session ended with BYE after the second re-INVITE (session_ended events: %d)", h.events.count(event.SessionEnded))
	case <-ctx.Done():
		t.Fatal("the gateway did not connect to the newest path")
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "after"); res.StatusCode >= 300 {
		t.Fatalf("MESSAGE after the second re-INVITE: %d", res.StatusCode)
	}
	if m := moved2.Recv(); string(m.Body) != "after" {
		t.Fatalf("got %q on the newest path", m.Body)
	}
	if n := h.events.count(event.SessionEnded); n != 0 {
		t.Fatalf("%d session_ended events", n)
	}
}

// A re-INVITE that moves the peer's path after the INVITE's 200 and ACK but before the session is up (SPEC
// §3.2 step 6): the setup binds to the new path instead, within setup_timeout, and the MESSAGE queued meanwhile
// goes there, not into an unbound session. Session first, the gateway active; the first path is a proxy that
// holds the gateway's connection, so its bodiless SEND is unanswered when the re-INVITE comes.
func TestReinviteBeforeUpMovesSetup(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	first := bob.NewSession()
	m, proxy := passiveBehindHeldProxy(t, bob, first) // the gateway connects
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", m.Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, dlg := inviteAck(t, h, bob, req)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	for proxy.accepted.Load() == 0 { // the gateway dialled the first path: its binding is held there
		if ctx.Err() != nil {
			t.Fatal("the gateway never connected to the first path")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resc := sendTaken(t, h, alice, bob.URI, "queued during setup")

	moved := bob.NewSession()
	re := sip.NewRequest(sip.INVITE, dlg.InviteResponse.Contact().Address)
	re.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	re.SetBody(bob.Media(moved, sdp.SetupPassive).Marshal(1, 2))
	res, err := dlg.Do(ctx, re)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v %v", res, err)
	}
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	moveTo(t, moved, ans)
	if res := finalResponse(t, resc); res.StatusCode != 200 {
		t.Fatalf("MESSAGE queued during setup answered %d %s, want 200", res.StatusCode, res.Reason)
	}
	if got := string(moved.Recv().Body); got != "queued during setup" {
		t.Fatalf("got %q on the new path", got)
	}
	if e := h.events.waitKind(t, event.SessionStarted); e.Key == "" {
		t.Fatal("session_started without a key")
	}
	if n := h.events.count(event.SessionEnded); n != 0 {
		t.Fatalf("%d session_ended events", n)
	}
}

// The gateway's 200 to a re-INVITE that moves the peer's path cannot be sent: the TCP connection the re-INVITE
// came on is gone by then. The session follows the new path all the same (SPEC §3.2 step 6): the gateway,
// active now, connects to it, and a MESSAGE queued meanwhile is sent there once bound, not left queued until a
// session timer ends the session.
func TestReinviteAnswerFailedStillRebinds(t *testing.T) {
	log := newCapturedLog()
	h := newHarnessWith(t, func(c *config.Config) { c.Gateway.Message.Reply = "wait" }, Options{Logger: slog.New(log)})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs.Recv()

	// The re-offer says passive, its path through a held proxy: the gateway becomes the active side, and its
	// connection to the new path waits at the proxy. Bob never sees the answer; the gateway's path is the one
	// its INVITE's 200 gave.
	moved := bob.NewSession()
	m, proxy := passiveBehindHeldProxy(t, bob, moved)
	d := cs.ClientDialog()
	ans, err := sdp.Parse(d.InviteResponse.Body())
	if err != nil {
		t.Fatal(err)
	}
	moveTo(t, moved, ans)
	s := h.gw.table.Get(bob.URI + ":" + alice.URI)
	if s == nil {
		t.Fatal("no session for bob's INVITE")
	}
	func() {
		// onReinvite takes the session's lock first: held here, the re-INVITE's answer waits until the
		// connection it came on is closed on both sides, so that sending it fails.
		s.mu.Lock()
		defer s.mu.Unlock()
		sendReinviteAndHangUp(t, h.gw.SIPAddr("tcp"), d, m.Marshal(2, 2))
	}()
	log.wait(t, "re-INVITE answer failed", nil) // the old path is left: MESSAGEs queue until the session rebinds

	resc := sendTaken(t, h, alice, bob.URI, "during the rebind")
	close(proxy.release)
	if res := finalResponse(t, resc); res.StatusCode != 200 {
		t.Fatalf("MESSAGE queued after the failed answer answered %d %s, want 200 (connections to the new path: %d)",
			res.StatusCode, res.Reason, proxy.accepted.Load())
	}
	if got := string(moved.Recv().Body); got != "during the rebind" {
		t.Fatalf("got %q on the new path", got)
	}
}

// sendReinviteAndHangUp sends a re-INVITE on d's dialog, offering sdpBody, over a TCP connection of its own to
// gwAddr. Once the gateway's transaction holds it (its 100 Trying came: the answer is late), it closes its
// sending side and returns when the gateway has closed the connection too: an answer can no longer be sent.
func sendReinviteAndHangUp(t *testing.T, gwAddr string, d *sipgo.DialogClientSession, sdpBody []byte) {
	t.Helper()
	nc, err := net.Dial("tcp", gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := fmt.Sprintf("INVITE %s SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=%s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"+
		"Call-ID: %s\r\nCSeq: %d INVITE\r\nContact: %s\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		d.InviteResponse.Contact().Address.String(), nc.LocalAddr(), sip.GenerateBranch(), d.InviteRequest.From().Value(),
		d.InviteResponse.To().Value(), d.InviteRequest.CallID().Value(), d.InviteRequest.CSeq().SeqNo+1,
		d.InviteRequest.Contact().Value(), len(sdpBody), sdpBody)
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(waitFor))
	stream := newSIPParser().NewSIPStream()
	buf := make([]byte, 4096)
	for trying := false; !trying; {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("no 100 Trying to the re-INVITE: %v", err)
		}
		if err := stream.ParseSIPStream(buf[:n], func(m sip.Message) {
			res, ok := m.(*sip.Response)
			if !ok || res.StatusCode != 100 {
				t.Errorf("got %q, want only 100 Trying before the connection is closed", m.String())
			}
			trying = true
		}); err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			t.Fatal(err)
		}
	}
	if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, nc); err != nil {
		t.Fatalf("the gateway did not close the connection: %v", err)
	}
}

// A re-offer replaces the peer's whole description (RFC 3264 §8, RFC 4975 §8.4), not only its path: a
// re-INVITE that keeps the path and changes a=accept-types changes what the gateway sends. Here the peer
// turns RCS-like, CPIM only at top level, and the next MESSAGE reaches it wrapped.
func TestReinviteChangesAcceptTypes(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	bob.SetTypes([]string{"text/plain"}, nil)
	alice.Send(h.udp(), bob.URI, "text/plain", "one")
	cs := bob.WaitInvite()
	if m := cs.Recv(); m.ContentType != "text/plain" {
		t.Fatalf("first SEND is %s, want text/plain", m.ContentType)
	}
	bob.SetTypes([]string{"message/cpim"}, []string{"text/plain"})
	reinvite(t, cs, bob.Media(cs, sdp.SetupPassive), 2)
	alice.Send(h.udp(), bob.URI, "text/plain", "two")
	m := cs.Recv()
	if m.ContentType != "message/cpim" {
		t.Fatalf("after a re-INVITE taking CPIM only, the SEND is %s %q, want message/cpim", m.ContentType, m.Body)
	}
	if c, err := cpim.Parse(m.Body); err != nil || string(c.Body) != "two" {
		t.Fatalf("CPIM %v: %q", err, m.Body)
	}
}

// A re-INVITE without SDP gets our offer in the 200, and the peer's answer comes in the ACK (RFC 3264, RFC
// 3261 §14.2). When that answer moves the chat to a new path and says passive, the gateway, the active side
// now, connects to the new path and the chat goes on there (SPEC §3.2 step 6).
func TestReinviteWithoutSDPAnswerInAckMoves(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answered passive: bob connected
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	if got := string(cs.Recv().Body); got != "before" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d := cs.ClientDialog()
	offer := reinviteWithoutSDP(t, cs)
	moved := bob.NewSession()
	moveTo(t, moved, offer)
	ack := sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)
	ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	ack.SetBody(bob.Media(moved, sdp.SetupPassive).Marshal(2, 2))
	if err := d.WriteRequest(ack); err != nil {
		t.Fatal(err)
	}
	select {
	case <-moved.MSRP.Bound():
	case <-ctx.Done():
		t.Fatal("the gateway did not connect to the path the ACK's answer gave")
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "after")
	if got := string(moved.Recv().Body); got != "after" {
		t.Fatalf("got %q on the new session", got)
	}
}

// reinviteWithoutSDP sends a re-INVITE without a body in cs's dialog and returns the offer in its 200.
func reinviteWithoutSDP(t *testing.T, cs *testpeer.ClientSession) *sdp.Media {
	t.Helper()
	res := reinviteRaw(t, cs, nil)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE: %v", res)
	}
	offer, err := sdp.Parse(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	return offer
}

// The page-mode side refuses a MESSAGE after a re-INVITE moved the peer's path and the session rebound (SPEC
// §3.2 step 6): the failure REPORT the SEND asked for (Failure-Report: yes) goes to the peer's current path,
// where its session now is, as one made during the rebind does (sendControlLocked: "reports follow the
// session"). Sent to the path the SEND came from, it reaches nobody: a failure lost silently (SPEC §5).
func TestFailureReportAfterRebindFollowsNewPath(t *testing.T) {
	h := newHarness(t, nil)
	alice, arrived, release := holdingPhone(t, "rrb-alice", 404, "Not Found")
	bob := testpeer.NewClient(t, "rrb-bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive: bob connects
	if r := cs.Send("text/plain", "fail me later"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v", r)
	}
	arrived()
	moved := bob.NewSession()
	moveTo(t, moved, reinvite(t, cs, bob.Media(moved, sdp.SetupActive), 2)) // bob connects to the gateway again
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := moved.MSRP.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	cs.MSRP.Close()                    // the peer's chat lives on the new path now; its old URI is gone
	time.Sleep(100 * time.Millisecond) // the rebind is done: the session is up on the new path
	close(release)                     // alice's 404 comes now: the failure REPORT is made
	select {
	case r := <-moved.Reports():
		if r.StatusCode != 403 {
			t.Fatalf("REPORT %d %s, want 403 (SIP 404)", r.StatusCode, r.Comment)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no failure REPORT reached the session's current path: it went to the URI the SEND came from, which the re-INVITE replaced")
	}
}

// holdingPhone is a page-mode user that answers each MESSAGE code reason once release is closed; arrived
// waits for its MESSAGE and fails the test after waitFor.
func holdingPhone(t *testing.T, user string, code int, reason string) (phone *testpeer.Phone, arrived func(), release chan struct{}) {
	got, release := make(chan struct{}, 1), make(chan struct{})
	phone = testpeer.NewPhoneWith(t, user, testpeer.PhoneConfig{OnMessage: func(req *sip.Request, tx sip.ServerTransaction) bool {
		got <- struct{}{}
		<-release
		tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
		return true
	}})
	arrived = func() {
		t.Helper()
		select {
		case <-got:
		case <-time.After(waitFor):
			t.Fatalf("%s got no MESSAGE", user)
		}
	}
	return phone, arrived, release
}

// reinviteRaw sends a re-INVITE with body (nil: none) in cs's dialog (cs INVITEd the gateway) and returns the
// response, whatever its status.
func reinviteRaw(t *testing.T, cs *testpeer.ClientSession, body []byte) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	d := cs.ClientDialog()
	req := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	}
	res, err := d.Do(ctx, req)
	if err != nil {
		t.Fatalf("re-INVITE: %v", err)
	}
	return res
}

// originOf returns the o= line of an SDP body.
func originOf(body []byte) string {
	for l := range strings.SplitSeq(string(body), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "o=") {
			return l
		}
	}
	return ""
}

// RFC 3264 §8: an SDP that modifies the session keeps the o= line, its version incremented by one. The gateway
// answered passive; its offer in the 200 to a re-INVITE without SDP says actpass, a changed description.
func TestReinviteWithoutSDPOfferBumpsVersion(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass) // the gateway answers passive
	first := cs.ClientDialog().InviteResponse.Body()
	res := reinviteRaw(t, cs, nil)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE without SDP: %d", res.StatusCode)
	}
	before, after := strings.Fields(originOf(first)), strings.Fields(originOf(res.Body()))
	if len(before) != 6 || len(after) != 6 {
		t.Fatalf("o= lines %q, %q", before, after)
	}
	v0, _ := strconv.Atoi(before[2])
	v1, _ := strconv.Atoi(after[2])
	if v1 != v0+1 || !slices.Equal(before[:2], after[:2]) || !slices.Equal(before[3:], after[3:]) {
		t.Fatalf("answer's o=%s, the offer after it o=%s: want the same line, version %d", before, after, v0+1)
	}
}

// RFC 4975 §8.6: an offer whose accept-types share nothing with ours gets 488. A re-offer is an offer: a 200
// would leave a session where every message fails. The session stays as it was.
func TestReofferWithoutCommonTypeGets488(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass)
	m := bob.Media(cs, sdp.SetupActive)
	m.AcceptTypes, m.AcceptWrappedTypes = []string{"application/x-nothing-common"}, nil
	if res := reinviteRaw(t, cs, m.Marshal(2, 2)); res.StatusCode != 488 {
		t.Fatalf("re-offer with accept-types %v answered %d, want 488\n%s", m.AcceptTypes, res.StatusCode, res.Body())
	}
	alice.Send(h.udp(), bob.URI, "text/plain", "still here")
	if got := string(cs.Recv().Body); got != "still here" {
		t.Fatalf("got %q after the refused re-offer", got)
	}
}

// RFC 3264 §8.2: a re-offer removes a stream by offering it on port 0, and the answer marks it port 0 too. A
// chat without its stream has nothing left: the gateway answers 200 with m=message 0, then ends the session
// with BYE (reason stream_removed).
func TestReofferPortZeroRemovesChat(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.Call(h.udp(), alice.URI, sdp.SetupActPass)
	m := bob.Media(cs, sdp.SetupActive)
	m.Port = 0
	res := reinviteRaw(t, cs, m.Marshal(2, 2))
	if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "\r\nm=message 0 ") {
		t.Fatalf("re-offer m=message 0 answered %d %s (Warning: %v), want 200 with m=message 0\n%s", res.StatusCode, res.Reason, res.GetHeader("Warning"), res.Body())
	}
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "stream_removed" {
		t.Fatalf("session ended %q, want stream_removed", e.Reason)
	}
}

// RFC 3264 §6: the t= line of an answer equals the offer's. The offer says RFC 4566 §5.9's own example.
func TestAnswerKeepsOffersTimeLine(t *testing.T) {
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	cs := bob.NewSession()
	body := strings.Replace(string(bob.Media(cs, sdp.SetupActPass).Marshal(5, 5)), "t=0 0\r\n", "t=3034423619 3042462419\r\n", 1)
	req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "application/sdp", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	_, dlg := inviteAck(t, h, bob, req)
	if ans := string(dlg.InviteResponse.Body()); !strings.Contains(ans, "\r\nt=3034423619 3042462419\r\n") {
		t.Fatalf("offer said t=3034423619 3042462419; the answer says otherwise:\n%s", ans)
	}
}

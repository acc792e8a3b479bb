package gateway

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file injects faults on loopback (issue "hardening", SPEC §3.3, §5): MSRP peers that reset, stop
// reading or restart without BYE, a SIP side that stops answering, and Shutdown under traffic. After each:
// no goroutine of ours is left, and every accepted message was delivered or failed-and-reported, once.

// noLeftoverGoroutines registers, as the test's last cleanup, a check that no goroutine running msrpgw code
// (the gateway's, or the msrp stacks of the test's peers) outlives the test. Call it first in the test.
func noLeftoverGoroutines(t *testing.T) {
	t.Helper()
	before := ourGoroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitFor)
		var now []string
		for {
			now = ourGoroutines()
			if len(now) <= len(before) {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("%d goroutines running msrpgw code before the test, %d after it:\n%s", len(before), len(now), strings.Join(now, "\n\n"))
	})
}

// ourGoroutines returns the stacks of goroutines that run msrpgw code, except the test's own.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/msrpgw/msrpgw/") || strings.Contains(g, "testing.tRunner") ||
			strings.Contains(g, "ourGoroutines") {
			continue
		}
		out = append(out, g)
	}
	return out
}

// accounting counts the message events per direction.
type accounting struct{ delivered, failed map[event.Direction]int }

func (l *eventLog) accounting() accounting {
	a := accounting{delivered: map[event.Direction]int{}, failed: map[event.Direction]int{}}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		switch e.Kind {
		case event.MessageDelivered:
			a.delivered[e.Direction]++
		case event.MessageFailed:
			a.failed[e.Direction]++
		}
	}
	return a
}

func (a accounting) total(d event.Direction) int { return a.delivered[d] + a.failed[d] }

// waitAccounted waits until the events account for exactly toMSRP and toSIP accepted messages (each
// delivered or failed), and fails the test when they do not within waitFor, or when more are accounted
// than were accepted.
func waitAccounted(t *testing.T, h *harness, toMSRP, toSIP int) accounting {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		a := h.events.accounting()
		if a.total(event.ToMSRP) == toMSRP && a.total(event.ToSIP) == toSIP {
			return a
		}
		if time.Now().After(deadline) || a.total(event.ToMSRP) > toMSRP || a.total(event.ToSIP) > toSIP {
			t.Fatalf("accepted %d to MSRP, %d to SIP; accounted %d+%d to MSRP, %d+%d to SIP (delivered+failed)",
				toMSRP, toSIP, a.delivered[event.ToMSRP], a.failed[event.ToMSRP], a.delivered[event.ToSIP], a.failed[event.ToSIP])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawAnswerer is a session-mode peer for the MESSAGE-first flow whose MSRP side is a raw TCP connection:
// it answers the gateway's INVITE with a=setup:active, connects to the gateway, binds with a bodiless SEND,
// and then does by hand whatever the fault needs.
type rawAnswerer struct {
	t      *testing.T
	URI    string
	rcvbuf int // SO_RCVBUF of the MSRP connection; 0 = the system's
	h      *harness
	ready  chan *rawPeer // one per INVITE answered and bound
	byes   chan string   // Call-IDs of BYEs received
	mu     sync.Mutex
	dlgs   map[string]*sipgo.DialogServerSession
}

func newRawAnswerer(t *testing.T, h *harness, user string, rcvbuf int) *rawAnswerer {
	a := &rawAnswerer{t: t, h: h, rcvbuf: rcvbuf, ready: make(chan *rawPeer, 4), byes: make(chan string, 4), dlgs: map[string]*sipgo.DialogServerSession{}}
	testpeer.NewUA(t, "raw-"+user, func(srv *sipgo.Server, sc *sipgo.Client, addr string) {
		a.URI = "sip:" + user + "@" + addr
		var contact sip.Uri
		sip.ParseUri(a.URI, &contact)
		dua := &sipgo.DialogUA{Client: sc, ContactHDR: sip.ContactHeader{Address: contact}}
		srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) { a.onInvite(dua, req, tx) })
		srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
			a.mu.Lock()
			d := a.dlgs[callID(req)]
			a.mu.Unlock()
			if d != nil {
				d.ReadAck(req, tx)
			}
		})
		srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			a.byes <- callID(req)
		})
	})
	return a
}

func (a *rawAnswerer) onInvite(dua *sipgo.DialogUA, req *sip.Request, tx sip.ServerTransaction) {
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		a.t.Errorf("gateway offer: %v", err)
		return
	}
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		a.t.Errorf("gateway path: %v", err)
		return
	}
	self, _ := msrp.ParseURI("msrp://127.0.0.1:9/" + msrp.NewSessionID() + ";tcp")
	dlg, err := dua.ReadInvite(req, tx)
	if err != nil {
		a.t.Errorf("ReadInvite: %v", err)
		return
	}
	a.mu.Lock()
	a.dlgs[callID(req)] = dlg
	a.mu.Unlock()
	answer := (&sdp.Media{Host: "127.0.0.1", Port: 9, Path: []string{self.String()}, AcceptTypes: []string{"text/plain"}, Setup: "active"}).Marshal(1, 1)
	if err := dlg.RespondSDP(answer); err != nil {
		a.t.Errorf("RespondSDP: %v", err)
		return
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if a.rcvbuf == 0 {
			return nil
		}
		var serr error
		c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, a.rcvbuf)
		})
		return serr
	}}
	nc, err := d.Dial("tcp", a.h.gw.MSRPAddr())
	if err != nil {
		a.t.Errorf("dial the gateway: %v", err)
		return
	}
	a.t.Cleanup(func() { nc.Close() })
	p := &rawPeer{rawMSRP: &rawMSRP{t: a.t, nc: nc, rd: msrp.NewReader(nc, msrp.Limits{})}, gw: path[0], self: self}
	if _, err := nc.Write([]byte(msrpFrame("SEND", "bind0001", p.gw, p.self, []string{"Message-ID: bind", "Byte-Range: 1-0/0"}, "", '$'))); err != nil {
		a.t.Errorf("bind: %v", err)
		return
	}
	nc.SetReadDeadline(time.Now().Add(waitFor))
	for {
		// The gateway may send what it queued (a SEND) before its 200 to our bind: both are legal orders.
		m, err := p.rd.ReadMessage()
		if err != nil {
			a.t.Errorf("bind: %v", err)
			return
		}
		if m.Method != "" {
			p.pending = append(p.pending, m)
			continue
		}
		if m.TransactionID != "bind0001" || m.StatusCode != 200 {
			a.t.Errorf("bind answered %d (tid %s)", m.StatusCode, m.TransactionID)
			return
		}
		break
	}
	nc.SetReadDeadline(time.Time{})
	a.ready <- p
}

func (a *rawAnswerer) waitReady() *rawPeer {
	a.t.Helper()
	select {
	case p := <-a.ready:
		return p
	case <-time.After(waitFor):
		a.t.Fatalf("%s: no session within %s", a.URI, waitFor)
		return nil
	}
}

func (a *rawAnswerer) waitBye() {
	a.t.Helper()
	select {
	case <-a.byes:
	case <-time.After(waitFor):
		a.t.Fatalf("%s: no BYE within %s", a.URI, waitFor)
	}
}

// reset closes the connection with an RST (SO_LINGER 0), as a crashed peer's kernel would.
func (p *rawPeer) reset() {
	if tc, ok := p.nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	p.nc.Close()
}

// readSENDs reads frames until n SENDs with a body arrived, without answering them.
func (p *rawPeer) readSENDs(n int) []*msrp.Message {
	p.t.Helper()
	var got []*msrp.Message
	for len(got) < n {
		m := p.next()
		if m.Method == "SEND" && len(m.Body) > 0 {
			got = append(got, m)
		}
	}
	return got
}

// waitNotifications waits for n failure notifications at the phone and returns their bodies.
func waitNotifications(p *testpeer.Phone, n int) []string {
	var out []string
	for len(out) < n {
		out = append(out, string(p.Recv().Body()))
	}
	return out
}

// The MSRP peer resets its connection while a chunked message is half sent: the half message is never
// delivered, the session ends with BYE, nothing is left running.
func TestFaultResetMidChunkedMessage(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "rst-alice")
	bob := newRawAnswerer(t, h, "rst-bob", 0)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "hello"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	p := bob.waitReady()
	sends := p.readSENDs(1)
	p.write(fmt.Sprintf("MSRP %s 200 OK\r\nTo-Path: %s\r\nFrom-Path: %s\r\n-------%s$\r\n", sends[0].TransactionID, p.gw.String(), p.self.String(), sends[0].TransactionID))
	// Half of a two-chunk message, answered 200, then the reset.
	p.write(msrpFrame("SEND", "half0001", p.gw, p.self, []string{"Message-ID: halfmsg", "Byte-Range: 1-5/10", "Content-Type: text/plain"}, "first", '+'))
	for m := p.next(); m.TransactionID != "half0001"; m = p.next() {
	}
	p.reset()
	bob.waitBye()
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "msrp_lost" {
		t.Fatalf("session ended with %q, want msrp_lost", e.Reason)
	}
	alice.Quiet(200 * time.Millisecond) // the half message never arrives
	a := waitAccounted(t, h, 1, 0)
	if a.delivered[event.ToMSRP] != 1 {
		t.Fatalf("the answered message is not counted delivered: %+v", a)
	}
}

// The MSRP peer resets while our SENDs are in flight (read, never answered): each fails with 480 and the
// sender gets one notification per message; the session ends with BYE.
func TestFaultResetWithSendsInFlight(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "fl-alice")
	bob := newRawAnswerer(t, h, "fl-bob", 0)
	const n = 5
	for i := 0; i < n; i++ {
		if res := alice.Send(h.udp(), bob.URI, "text/plain", fmt.Sprintf("in flight %d", i)); res.StatusCode != 202 {
			t.Fatalf("MESSAGE %d: %d", i, res.StatusCode)
		}
	}
	p := bob.waitReady()
	p.readSENDs(n)
	p.reset()
	bob.waitBye()
	for _, body := range waitNotifications(alice, n) {
		if !strings.Contains(body, "480") || !strings.Contains(body, "in flight") {
			t.Fatalf("notification %q", body)
		}
	}
	a := waitAccounted(t, h, n, 0)
	if a.failed[event.ToMSRP] != n {
		t.Fatalf("%+v, want %d failed", a, n)
	}
}

// The MSRP peer stops reading (a tiny receive buffer, so little data fills everything): the gateway's
// write queue fills, and the MESSAGEs it cannot take fail with a reported failure (503, a notification)
// instead of vanishing; when the stuck peer finally goes, everything still queued fails too.
func TestFaultPeerStopsReading(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "sr-alice")
	bob := newRawAnswerer(t, h, "sr-bob", 4096)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "first"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	p := bob.waitReady() // from here on nobody reads
	body := strings.Repeat("z", 16<<10)
	accepted := 1
	full := false
	for i := 0; i < 2000 && !full; i++ {
		req := alice.NewMessage(bob.URI, "text/plain", fmt.Sprintf("%04d %s", i, body))
		req.SetTransport("TCP")
		req.SetDestination(h.gw.SIPAddr("tcp"))
		res, err := doReq(alice.SIPClient(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 202 {
			t.Fatalf("MESSAGE %d: %d %s", i, res.StatusCode, res.Reason)
		}
		accepted++
		full = h.events.accounting().failed[event.ToMSRP] > 0
	}
	if !full {
		t.Fatalf("%d MESSAGEs of %d bytes did not fill the write queue", accepted, len(body))
	}
	note := string(alice.Recv().Body())
	if !strings.Contains(note, "503") || !strings.Contains(note, "queue full") {
		t.Fatalf("notification %q, want the 503 of a full write queue", note)
	}
	p.reset()
	bob.waitBye()
	a := waitAccounted(t, h, accepted, 0)
	t.Logf("%d accepted: %d delivered, %d failed", accepted, a.delivered[event.ToMSRP], a.failed[event.ToMSRP])
	if a.delivered[event.ToMSRP] != 0 {
		t.Fatalf("%d reported delivered although the peer never answered", a.delivered[event.ToMSRP])
	}
}

// The MSRP peer restarts without BYE (its MSRP session and connection go away, the SIP side stays): the
// gateway ends the session with BYE, and the next MESSAGE for the key sets up a new one.
func TestFaultPeerRestartsWithoutBye(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "rs-alice")
	bob := testpeer.NewClient(t, "rs-bob")
	bob.SetAnswer(200, "active") // bob dials the gateway: closing his session closes his connection
	alice.Send(h.udp(), bob.URI, "text/plain", "before")
	cs := bob.WaitInvite()
	if m := cs.Recv(); string(m.Body) != "before" {
		t.Fatalf("got %q", m.Body)
	}
	// Closed before its 200 went out, "before" would be failed-and-reported (the gateway cannot know it
	// arrived): wait for the confirmation first.
	if e := h.events.waitKind(t, event.MessageDelivered); e.Direction != event.ToMSRP {
		t.Fatalf("delivered %s", e.Direction)
	}
	cs.MSRP.Close() // the restart: no BYE
	cs.WaitBye()
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "msrp_lost" {
		t.Fatalf("session ended with %q", e.Reason)
	}
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "after"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE after the restart: %d", res.StatusCode)
	}
	cs2 := bob.WaitInvite()
	if m := cs2.Recv(); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
	if r := cs2.Send("text/plain", "back"); r.StatusCode != 200 {
		t.Fatalf("SEND on the new session: %+v", r)
	}
	if m := alice.Recv(); string(m.Body()) != "back" {
		t.Fatalf("alice got %q", m.Body())
	}
	waitAccounted(t, h, 2, 1)
}

// shortTimersEnv marks a child process of shortSIPTimers.
const shortTimersEnv = "MSRPGW_TEST_SHORT_SIP_TIMERS"

// shortSIPTimers runs the calling test again, alone, in a child process of this test binary with sipgo's
// timers shortened (T1 10 ms: Timer F and Timer L 640 ms), and reports whether this is that child: the test
// goes on only there. sipgo's timers are process-wide and read by its goroutines without a lock, so they are
// never changed in the process that runs the other tests.
func shortSIPTimers(t *testing.T) bool {
	t.Helper()
	if os.Getenv(shortTimersEnv) == "1" {
		sip.SetTimers(10*time.Millisecond, 40*time.Millisecond, 50*time.Millisecond)
		return true
	}
	args := []string{"-test.run=^" + t.Name() + "$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), shortTimersEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child test: %v\n%s", err, out)
	}
	return false
}

// The SIP side stops answering: the generated MESSAGE times out (Timer F, shortened here through sipgo's
// process-wide timers) and the MSRP peer gets the failure REPORT 408 it asked for.
func TestFaultSIPSideStopsAnswering(t *testing.T) {
	if !shortSIPTimers(t) {
		return
	}
	noLeftoverGoroutines(t)
	h := newHarness(t, nil)
	alice := testpeer.NewPhone(t, "mute-alice")
	alice.SetAnswer(0) // receives, never answers
	bob := testpeer.NewClient(t, "mute-bob")
	cs := bob.Call(h.udp(), alice.URI, "active")
	if r := cs.Send("text/plain", "anyone there?"); r.StatusCode != 200 {
		t.Fatalf("SEND: %+v (the gateway answers before delivery)", r)
	}
	alice.Recv()
	rep := cs.Report()
	if rep.StatusCode != 408 {
		t.Fatalf("REPORT %d %s, want 408", rep.StatusCode, rep.Comment)
	}
	if e := h.events.waitKind(t, event.MessageFailed); e.Code != 408 || e.Direction != event.ToSIP {
		t.Fatalf("failure counted as %d %s", e.Code, e.Direction)
	}
	// Failure-Report: no asks for nothing: no REPORT.
	if r := cs.SendOut(&msrp.Outgoing{ContentType: "text/plain", Body: []byte("no report please"), FailureReport: "no"}); r.Err != nil {
		t.Fatalf("SEND: %+v", r)
	}
	alice.Recv()
	cs.NoReport(300 * time.Millisecond)
	waitAccounted(t, h, 0, 2)
	cs.Bye()
}

// Shutdown under traffic both ways: every session gets BYE, and every message accepted on either side is
// accounted for as delivered or failed (never delivered without arriving).
func TestFaultShutdownUnderTraffic(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, func(c *config.Config) { c.Gateway.ShutdownTimeout = time.Second })
	const sessions = 4
	type chat struct {
		alice *testpeer.Phone
		bob   *testpeer.Client
		cs    *testpeer.ClientSession
	}
	var chats []chat
	for i := 0; i < sessions; i++ {
		c := chat{alice: testpeer.NewPhone(t, fmt.Sprintf("sd-alice%d", i)), bob: testpeer.NewClient(t, fmt.Sprintf("sd-bob%d", i))}
		c.alice.Send(h.udp(), c.bob.URI, "text/plain", "hello")
		c.cs = c.bob.WaitInvite()
		c.cs.Recv()
		chats = append(chats, c)
	}
	// attempted - accepted is what was in flight when the gateway went: its answer may be lost with the
	// transport, so it may or may not be accounted.
	var acceptedToMSRP, acceptedToSIP, attemptedToMSRP, attemptedToSIP atomic.Int64
	acceptedToMSRP.Store(sessions)
	attemptedToMSRP.Store(sessions)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, c := range chats {
		wg.Add(2)
		go func() { // MESSAGEs until the gateway refuses
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				attemptedToMSRP.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				res, err := c.alice.TrySend(ctx, h.udp(), c.bob.URI, "text/plain", fmt.Sprintf("m%d", i))
				cancel()
				if err != nil || res.StatusCode >= 300 {
					return
				}
				acceptedToMSRP.Add(1)
			}
		}()
		go func() { // SENDs until the session is gone
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				done := make(chan msrp.SendResult, 1)
				attemptedToSIP.Add(1)
				if err := c.cs.MSRP.Send(&msrp.Outgoing{ContentType: "text/plain", Body: []byte(fmt.Sprintf("s%d", i))}, func(r msrp.SendResult) { done <- r }); err != nil {
					return
				}
				if r := <-done; r.StatusCode != 200 {
					return
				}
				acceptedToSIP.Add(1)
			}
		}()
	}
	// The peers' inboxes are drained (and counted) as the messages come, so that no handler blocks.
	var gotMSRP, gotSIP atomic.Int64
	gotMSRP.Store(sessions) // each "hello" was read above
	drained := make(chan struct{})
	var drainers sync.WaitGroup
	for _, c := range chats {
		drainers.Add(1)
		go func() {
			defer drainers.Done()
			for {
				select {
				case <-c.cs.Inbox():
					gotMSRP.Add(1)
				case <-c.alice.Inbox():
					gotSIP.Add(1)
				case <-drained:
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // traffic runs
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := h.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for _, c := range chats {
		c.cs.WaitBye()
	}
	deadline := time.Now().Add(waitFor)
	a := h.events.accounting()
	for ; a.total(event.ToMSRP) < int(acceptedToMSRP.Load()) || a.total(event.ToSIP) < int(acceptedToSIP.Load()); a = h.events.accounting() {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d to MSRP, %d to SIP; accounted %d, %d", acceptedToMSRP.Load(), acceptedToSIP.Load(), a.total(event.ToMSRP), a.total(event.ToSIP))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.total(event.ToMSRP) > int(attemptedToMSRP.Load()) || a.total(event.ToSIP) > int(attemptedToSIP.Load()) {
		t.Fatalf("accounted %d to MSRP, %d to SIP, more than attempted (%d, %d)", a.total(event.ToMSRP), a.total(event.ToSIP), attemptedToMSRP.Load(), attemptedToSIP.Load())
	}
	// Delivered means it arrived: compare with what the peers received (failure notifications included at
	// the phones, so that count is an upper bound).
	time.Sleep(100 * time.Millisecond) // let the drainers catch up with what is in the channels
	close(drained)
	drainers.Wait()
	t.Logf("to MSRP: %d accepted, %d delivered, %d failed, %d received; to SIP: %d accepted, %d delivered, %d failed, %d received",
		acceptedToMSRP.Load(), a.delivered[event.ToMSRP], a.failed[event.ToMSRP], gotMSRP.Load(),
		acceptedToSIP.Load(), a.delivered[event.ToSIP], a.failed[event.ToSIP], gotSIP.Load())
	if a.delivered[event.ToMSRP] > int(gotMSRP.Load()) || a.delivered[event.ToSIP] > int(gotSIP.Load()) {
		t.Fatal("more reported delivered than arrived")
	}
	if acceptedToMSRP.Load() <= sessions || acceptedToSIP.Load() == 0 {
		t.Fatal("no traffic ran before the shutdown")
	}
}

// A peer that stops reading and keeps its connection open forever: SENDs stuck in the write queue behind it
// are never written, so no transaction timer runs for them. They must still fail within bounded time (the
// session ends with BYE once a SEND has waited for msrp.transaction_timeout twice), not linger until
// message_timeout.
func TestFaultPeerStopsReadingForever(t *testing.T) {
	noLeftoverGoroutines(t)
	h := newHarness(t, func(c *config.Config) { c.MSRP.TransactionTimeout = 300 * time.Millisecond })
	alice := testpeer.NewPhone(t, "sf-alice")
	bob := newRawAnswerer(t, h, "sf-bob", 4096)
	if res := alice.Send(h.udp(), bob.URI, "text/plain", "first"); res.StatusCode != 202 {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	bob.waitReady() // from here on nobody reads, and nobody closes
	body := strings.Repeat("z", 16<<10)
	accepted := 1
	// Enough to fill the kernel's buffers and then the write queue (the first 503): from then on SENDs
	// wait in the queue behind a write that never completes. (A SEND written before may time out first, 408,
	// when the machine is slow: that is not yet the queue full.)
	queueFull := func() bool {
		return h.events.countWhere(func(e event.Event) bool {
			return e.Kind == event.MessageFailed && e.Code == outcomeQueueFull.Code
		}) > 0
	}
	for i := 0; i < 2000 && !queueFull(); i++ {
		req := alice.NewMessage(bob.URI, "text/plain", fmt.Sprintf("%04d %s", i, body))
		req.SetTransport("TCP")
		req.SetDestination(h.gw.SIPAddr("tcp"))
		res, err := doReq(alice.SIPClient(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 202 {
			accepted++
		}
	}
	bob.waitBye()
	if e := h.events.waitKind(t, event.SessionEnded); e.Reason != "msrp_stalled" {
		t.Fatalf("session ended with %q, want msrp_stalled", e.Reason)
	}
	a := waitAccounted(t, h, accepted, 0)
	if a.delivered[event.ToMSRP] != 0 {
		t.Fatalf("%d reported delivered although the peer never answered", a.delivered[event.ToMSRP])
	}
}

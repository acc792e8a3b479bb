package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/internal/testpeer"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// sent is one MESSAGE of a stream and what became of it.
type sent struct {
	body         string
	beforeSignal bool
	code         int
	err          error
}

// stream sends MESSAGEs "PREFIX-i" from phone to toURI, one after the other, until stop is closed or a
// MESSAGE gets no response; signaled tells whether SIGTERM has been sent yet.
// A MESSAGE sent after the signal waits for its response only while the daemon runs (exited is cancelled when
// it has gone).
func stream(phone *testpeer.Phone, gw, toURI, prefix string, signaled *atomic.Bool, exited context.Context, stop <-chan struct{}, progress *atomic.Int64) []sent {
	var out []sent
	for i := 0; i < 100000; i++ {
		select {
		case <-stop:
			return out
		default:
		}
		s := sent{body: fmt.Sprintf("%s-%d", prefix, i), beforeSignal: !signaled.Load()}
		parent := context.Background()
		if !s.beforeSignal {
			parent = exited
		}
		ctx, cancel := context.WithTimeout(parent, waitFor)
		res, err := phone.TrySend(ctx, gw, toURI, "text/plain", s.body)
		cancel()
		if err != nil {
			s.err = err
		} else {
			s.code = int(res.StatusCode)
		}
		out = append(out, s)
		progress.Add(1)
		if err != nil {
			return out
		}
	}
	return out
}

// TestDrainOnSIGTERM: under traffic, SIGTERM makes readiness false, refuses new sessions with 503, ends every
// session with BYE and exits 0; every MESSAGE sent before the signal was delivered or answered with a failure.
func TestDrainOnSIGTERM(t *testing.T) {
	// setup_timeout above shutdown_timeout: the stuck setup below keeps the drain open for shutdown_timeout.
	d := startDaemon(t, daemonOpts{setupTimeout: "8s", shutdownTimeout: "2s"})

	type pair struct {
		phone  *testpeer.Phone
		client *testpeer.Client
		cs     *testpeer.ClientSession
	}
	pairs := make([]*pair, 2)
	for i := range pairs {
		p := &pair{phone: testpeer.NewPhone(t, fmt.Sprint("phone", i)), client: testpeer.NewClient(t, fmt.Sprint("client", i))}
		_, p.cs = upSession(t, d, p.phone, p.client)
		pairs[i] = p
	}
	// A session stuck in setup (its client never answers the INVITE) holds a queued message, and so keeps the
	// drain open for shutdown_timeout. What becomes of that message is TestDrainAnswersMessageHeldBySetup's.
	exited, cancelExited := context.WithCancel(context.Background())
	defer cancelExited()
	go func() {
		select {
		case <-d.exited:
			cancelExited()
		case <-exited.Done():
		}
	}()
	holdSetup(t, d, exited)

	var signaled atomic.Bool
	stop := make(chan struct{})
	results := make([][]sent, len(pairs))
	progress := make([]atomic.Int64, len(pairs))
	var wg sync.WaitGroup
	for i, p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = stream(p.phone, d.sipUDP, p.client.URI, fmt.Sprint("s", i), &signaled, exited, stop, &progress[i])
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	// The clients' SENDs are collected while they come: a stream carries thousands, more than a peer's inbox
	// holds unread.
	got := make([]map[string]int, len(pairs))
	collectStop := make(chan struct{})
	var collectors sync.WaitGroup
	for i, p := range pairs {
		got[i] = map[string]int{}
		collectors.Add(1)
		go func() {
			defer collectors.Done()
			for {
				select {
				case m := <-p.cs.Inbox():
					got[i][string(m.Body)]++
				case <-collectStop:
					for {
						m, ok := p.cs.TryRecv(0)
						if !ok {
							return
						}
						got[i][string(m.Body)]++
					}
				}
			}
		}()
	}
	for i := range progress { // traffic is flowing on every stream
		for progress[i].Load() < 5 {
			time.Sleep(5 * time.Millisecond)
		}
	}

	signaled.Store(true)
	d.signal(syscall.SIGTERM)

	// Readiness goes false while the daemon drains.
	deadline := time.Now().Add(waitFor)
	for {
		code, _, err := d.tryDo("GET", "/readyz", "", "")
		if err != nil {
			t.Fatalf("/readyz unreachable before it reported not ready: %v", err)
		}
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never went 503 after SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// New sessions are refused with 503, from either side.
	newPhone, newClient := testpeer.NewPhone(t, "late"), testpeer.NewClient(t, "lateclient")
	if res, err := newPhone.TrySend(context.Background(), d.sipUDP, newClient.URI, "text/plain", "too late"); err != nil || res.StatusCode != 503 {
		t.Errorf("MESSAGE for a new session while draining: %v %v, want 503", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := newClient.Invite(ctx, d.sipUDP, newPhone.URI, sdp.SetupActPass); testpeer.InviteCode(err) != 503 {
		t.Errorf("INVITE while draining: %v, want 503", err)
	}

	// The process exits 0, and every session got BYE (checked last: a known bug may skip the test there).
	if code := d.waitExit(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	defer func() {
		var all []*testpeer.ClientSession
		for _, p := range pairs {
			all = append(all, p.cs)
		}
		d.checkShutdownByes(all...)
	}()
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
	close(collectStop)         // the daemon is gone: everything it delivered is in the inboxes
	collectors.Wait()

	// Accounting: nothing sent before the signal was lost, nothing was delivered twice.
	for i := range pairs {
		got := got[i]
		var pre, delivered, failed int
		for _, s := range results[i] {
			if got[s.body] > 1 {
				t.Errorf("%s delivered %d times", s.body, got[s.body])
			}
			if s.code == 200 && got[s.body] != 1 {
				t.Errorf("%s answered 200 (before the signal: %v) but the client got it %d times", s.body, s.beforeSignal, got[s.body])
			}
			if !s.beforeSignal {
				continue
			}
			pre++
			switch {
			case s.err != nil:
				t.Errorf("%s, sent before SIGTERM, got no response: %v", s.body, s.err)
			case s.code == 200:
				delivered++
			case s.code >= 300:
				failed++
			default:
				t.Errorf("%s answered %d: neither delivered nor failed", s.body, s.code)
			}
		}
		if pre < 5 {
			t.Errorf("stream %d: only %d messages before the signal", i, pre)
		}
		t.Logf("stream %d: %d messages in all, %d before SIGTERM (%d delivered, %d failed)", i, len(results[i]), pre, delivered, failed)
	}
}

// holdSetup starts a MESSAGE-first session whose client never answers the INVITE, and waits until the daemon
// lists it as setting up. The returned channel gives the final response code to the MESSAGE held by that setup
// (-1: none before ctx ended).
func holdSetup(t *testing.T, d *daemon, ctx context.Context) <-chan int {
	t.Helper()
	phone, stuck := testpeer.NewPhone(t, "stuckphone"), testpeer.NewClient(t, "stuck")
	stuck.SetAnswer(0, "")
	res := make(chan int, 1)
	ctx, cancel := context.WithTimeout(ctx, waitFor)
	done := make(chan struct{})
	// Before the phone's own clean-up (registered earlier, so run later): the MESSAGE's wait ends with the test
	// that made it, never in a later one.
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		r, err := phone.TrySend(ctx, d.sipUDP, stuck.URI, "text/plain", "stuck")
		if err != nil || r == nil { // nil, nil: the transaction ended without a response
			res <- -1
			return
		}
		res <- int(r.StatusCode)
	}()
	d.waitSessions("with one setting up", func(l []admin.Session) bool {
		for _, s := range l {
			if s.Key == stuck.URI+":"+phone.URI && s.State == admin.StateSettingUp {
				return true
			}
		}
		return false
	})
	return res
}

// TestDrainAnswersMessageHeldBySetup: a MESSAGE waiting (reply: wait) on a session still being set up when
// SIGTERM comes fails with 503 once shutdown_timeout has passed (SPEC §3.3), rather than going unanswered.
func TestDrainAnswersMessageHeldBySetup(t *testing.T) {
	d := startDaemon(t, daemonOpts{setupTimeout: "8s", shutdownTimeout: "1s"})
	held := holdSetup(t, d, context.Background())
	d.stop()
	if code := <-held; code != 503 {
		t.Errorf("the MESSAGE held by the setup got %d at shutdown, want 503", code)
	}
}

// TestDrainAPI: POST /api/drain makes readiness false and refuses new sessions, while existing sessions keep
// carrying messages; SIGTERM then ends them with BYE and exits 0.
func TestDrainAPI(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	_, cs := upSession(t, d, phone, client)

	code, body := d.do("POST", "/api/drain", "")
	if code != 202 {
		t.Fatalf("POST /api/drain = %d %s, want 202", code, body)
	}
	if code, _ := d.do("GET", "/readyz", ""); code != 503 {
		t.Errorf("/readyz after drain = %d, want 503", code)
	}
	if code, _ := d.do("GET", "/healthz", ""); code != 200 {
		t.Errorf("/healthz after drain = %d, want 200", code)
	}
	other := testpeer.NewClient(t, "carol")
	if res := phone.Send(d.sipUDP, other.URI, "text/plain", "new"); res.StatusCode != 503 {
		t.Errorf("MESSAGE for a new session while draining = %d, want 503", res.StatusCode)
	}
	for i := 0; i < 5; i++ {
		if res := phone.Send(d.sipUDP, client.URI, "text/plain", "still"); res.StatusCode != 200 {
			t.Fatalf("MESSAGE on the existing session while draining = %d, want 200", res.StatusCode)
		}
		cs.Recv()
		if r := cs.Send("text/plain", "back"); r.StatusCode != 200 {
			t.Fatalf("SEND while draining = %+v", r)
		}
		phone.Recv()
	}
	if code, _ := d.do("POST", "/api/drain", ""); code != 202 {
		t.Errorf("second POST /api/drain = %d, want 202 (idempotent)", code)
	}
	d.stop()
	d.checkShutdownByes(cs)
}

// A second SIGINT/SIGTERM during the drain stops waiting for it: the process exits at once with 1, while a
// MESSAGE held by a setup would have kept it for shutdown_timeout.
func TestSecondSignalEndsDrain(t *testing.T) {
	d := startDaemon(t, daemonOpts{setupTimeout: "30s", shutdownTimeout: "20s"})
	holdSetup(t, d, context.Background())
	d.signal(syscall.SIGTERM)
	d.waitJSON(func(m map[string]any) bool { return m["msg"] == "shutting down" })
	start := time.Now()
	d.signal(syscall.SIGINT)
	if code := d.waitExit(); code != 1 {
		t.Fatalf("exit code %d after a second signal, want 1", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the second signal took %s to end the process", took)
	}
}

// TestSignalDuringStartup: a SIGTERM or SIGINT that comes while the daemon starts (held here by the test build at
// each step of start-up in turn) stops it at that step: it never serves, it releases every listener it opened,
// it says so in its log, and it exits 0 at once, as after a drain.
func TestSignalDuringStartup(t *testing.T) {
	bin := hookedDaemonBin(t)
	for _, c := range []struct {
		step string
		sig  syscall.Signal
	}{
		{stepConfig, syscall.SIGTERM},
		{stepGateway, syscall.SIGINT},
		{stepListeners, syscall.SIGTERM},
		{stepAdmin, syscall.SIGINT},
	} {
		t.Run(c.step, func(t *testing.T) {
			path := writeConfig(t, fmt.Sprintf(baseConfig, "3s", "2s", "", ""))
			d := runBinary(t, bin, []string{holdStartupEnv + "=" + c.step}, "-config", path)
			d.waitJSON(func(m map[string]any) bool { return m["msg"] == "start-up held for a test" && m["step"] == c.step })
			// What start-up opened by this step: every address must be free again once the daemon has gone.
			var opened []string
			if c.step == stepListeners || c.step == stepAdmin {
				started := d.waitJSON(func(m map[string]any) bool { return m["msg"] == "gateway started" })
				sips, _ := started["sip"].([]any)
				for _, s := range sips {
					opened = append(opened, fmt.Sprint(s))
				}
				opened = append(opened, "tcp:"+fmt.Sprint(started["msrp"]))
				if len(opened) != 3 {
					t.Fatalf("listeners in %v: %q, want udp and tcp SIP and MSRP", started, opened)
				}
			}

			sent := time.Now()
			d.signal(c.sig)
			code := d.waitExit()
			log := strings.Join(d.logLines(), "\n")
			if code != 0 {
				t.Fatalf("exit status %d after %v during start-up, want 0; log:\n%s", code, c.sig, log)
			}
			if took := time.Since(sent); took > 3*time.Second {
				t.Errorf("the daemon took %s to stop during start-up", took)
			}
			var stopping, stopped bool
			for _, l := range d.logLines() {
				var m map[string]any
				if json.Unmarshal([]byte(l), &m) != nil {
					t.Errorf("log line not JSON: %s", l)
					continue
				}
				switch m["msg"] {
				case "stopping during start-up":
					stopping = m["step"] == c.step && m["signal"] == c.sig.String()
				case "stopped during start-up":
					stopped = stopping
				case "admin API listening", "shutting down", "stopped":
					t.Errorf("the daemon went on to serve after %v during start-up: %s", c.sig, l)
				}
			}
			if !stopping || !stopped {
				t.Errorf("want \"stopping during start-up\" (step %s, signal %v) then \"stopped during start-up\"; log:\n%s", c.step, c.sig, log)
			}
			for _, a := range opened {
				network, addr, _ := strings.Cut(a, ":")
				var err error
				if network == "udp" {
					var pc net.PacketConn
					if pc, err = net.ListenPacket("udp", addr); err == nil {
						pc.Close()
					}
				} else {
					var ln net.Listener
					if ln, err = net.Listen("tcp", addr); err == nil {
						ln.Close()
					}
				}
				if err != nil {
					t.Errorf("%s %s still taken after the daemon stopped: %v", network, addr, err)
				}
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/gateway"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestMain(m *testing.M) {
	// sipgo's limits are process-wide: set once, as the daemon does in main.
	gateway.ConfigureSIPStack(config.Default())
	os.Exit(m.Run())
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startGateway runs the real gateway in-process on ephemeral loopback ports, in its default wait reply mode.
func startGateway(t *testing.T) *gateway.Gateway {
	t.Helper()
	cfg := config.Default()
	// UDP and TCP on one port: the gateway's Contact names one port, and in-dialog requests over TCP (BYE)
	// go there. With two ephemeral ports they would reach the UDP port number over TCP and be refused.
	addr := freePortPair(t)
	cfg.SIP.Listen = []config.Listen{{Network: "udp", Addr: addr}, {Network: "tcp", Addr: addr}}
	cfg.SIP.Contact = "sip:" + addr
	cfg.MSRP.Listen = "msrp://127.0.0.1:0;tcp"
	cfg.Gateway.SetupTimeout = 5 * time.Second
	cfg.Gateway.ShutdownTimeout = 2 * time.Second
	cfg.Gateway.Message.Reply = "wait"
	gw, err := gateway.New(cfg, gateway.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw
}

// freePortPair finds a 127.0.0.1 port free for both UDP and TCP (bound on :0, then released).
func freePortPair(t *testing.T) string {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return ""
}

func runLoad(t *testing.T, cfg Config) *Report {
	t.Helper()
	cfg.Logger = quietLogger()
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute // a bound only: these runs end by Count
	}
	if cfg.Drain == 0 {
		cfg.Drain = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// TestRealGatewayClean: the gateway delivers everything once and in order; the tool must say so.
func TestRealGatewayClean(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"both open loop udp session first", Config{Mode: "both", Sessions: 3, Rate: 150, Count: 20, Transport: "udp", Setup: "invite"}},
		{"msg2msrp poisson arrivals", Config{Mode: "msg2msrp", Sessions: 5, Rate: 300, Arrival: "poisson", Count: 20, Transport: "udp", Setup: "invite"}},
		{"msg2msrp closed loop tcp message first", Config{Mode: "msg2msrp", Sessions: 2, Window: 1, Count: 20, Transport: "tcp", Setup: "message"}},
		{"msrp2msg own connections", Config{Mode: "msrp2msg", Sessions: 2, Window: 2, Count: 20, Transport: "udp", Setup: "invite", ConnPerSession: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw := startGateway(t)
			cfg := tc.cfg
			cfg.GW = gw.SIPAddr(cfg.Transport)
			rep := runLoad(t, cfg)
			if rep.Setups.Count != int64(cfg.Sessions) || rep.Setups.Failures != 0 {
				t.Errorf("setups %d ok, %d failed %v; want %d, 0", rep.Setups.Count, rep.Setups.Failures, rep.Setups.Why, cfg.Sessions)
			}
			if rep.Setups.Byes != int64(cfg.Sessions) {
				t.Errorf("byes %d (failed %d), want %d", rep.Setups.Byes, rep.Setups.ByeFailure, cfg.Sessions)
			}
			want := int64(cfg.Sessions) * cfg.Count
			wantFlows := map[string]bool{"msg2msrp": cfg.Mode != "msrp2msg", "msrp2msg": cfg.Mode != "msg2msrp"}
			for name, on := range wantFlows {
				f, ok := rep.Flows[name]
				if ok != on {
					t.Fatalf("flow %s reported: %v, want %v", name, ok, on)
				}
				if !on {
					continue
				}
				if f.Sent != want || f.Delivered != want || f.Lost != 0 || f.Duplicated != 0 || f.Reordered != 0 || f.SendErrors != 0 {
					t.Errorf("%s: %+v; want %d sent and delivered, nothing lost, duplicated or reordered", name, f, want)
				}
				if f.Responses["200"] != want {
					t.Errorf("%s: final responses %v, want %d × 200", name, f.Responses, want)
				}
				if f.Latency.N != int(want) || f.Latency.Max <= 0 || f.Latency.P50 > f.Latency.P99 {
					t.Errorf("%s: latency %+v", name, f.Latency)
				}
				// The wire latency (MESSAGEs over UDP) spans part of each message's latency, so none of its
				// quantiles can exceed the latency's.
				w := f.WireLatency
				if wired := name == "msg2msrp" && cfg.Transport == "udp"; wired != (w != nil) {
					t.Fatalf("%s over %s: wire latency %+v", name, cfg.Transport, w)
				}
				if w != nil && (w.N != int(want) || w.P50 <= 0 || w.P50 > f.Latency.P50 || w.P99 > f.Latency.P99 || w.Max > f.Latency.Max) {
					t.Errorf("%s: wire latency %+v against latency %+v", name, *w, f.Latency)
				}
			}
			// A clean run's verdict is clean (exit status 0): nothing else the report counts is held against it.
			if faults := rep.faults(); len(faults) != 0 {
				t.Errorf("clean run judged not clean: %q", faults)
			}
		})
	}
}

// TestFaultyGateway: a gateway that loses, duplicates and swaps messages is reported as doing exactly that.
func TestFaultyGateway(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "msrp2msg"} {
		t.Run(mode, func(t *testing.T) {
			g := newFakeGW(t, faultPlan)
			const sessions, count = 2, 20
			// Window 1: the fake sees each session's messages in send order, so its faults are exact.
			rep := runLoad(t, Config{GW: g.ua.addr, Mode: mode, Sessions: sessions, Window: 1, Count: count,
				Transport: "udp", Setup: "invite", Drain: time.Second})
			f := rep.Flows[mode]
			per := int64(count / 10)
			want := FlowReport{Sent: sessions * count, Delivered: sessions * (count - per), Lost: sessions * per,
				Duplicated: sessions * per, Reordered: sessions * per}
			if f.Sent != want.Sent || f.Delivered != want.Delivered || f.Lost != want.Lost ||
				f.Duplicated != want.Duplicated || f.Reordered != want.Reordered {
				t.Errorf("reported sent %d delivered %d lost %d duplicated %d reordered %d; want %d %d %d %d %d",
					f.Sent, f.Delivered, f.Lost, f.Duplicated, f.Reordered,
					want.Sent, want.Delivered, want.Lost, want.Duplicated, want.Reordered)
			}
			if rep.Setups.Count != sessions {
				t.Errorf("setups %d, want %d (%v)", rep.Setups.Count, sessions, rep.Setups.Why)
			}
		})
	}
}

// TestLateDuplicateCounted: a copy the gateway delivers after every message was accounted for, well inside
// the drain, is a duplicate: the drain goes on listening for lateWindow once all is settled.
func TestLateDuplicateCounted(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "msrp2msg"} {
		t.Run(mode, func(t *testing.T) {
			g := newFakeGW(t, func(n int64) fault {
				if n == 4 {
					return echo
				}
				return pass
			})
			rep := runLoad(t, Config{GW: g.ua.addr, Mode: mode, Sessions: 1, Window: 1, Count: 5,
				Transport: "udp", Setup: "invite", Drain: 3 * time.Second})
			if f := rep.Flows[mode]; f.Delivered != 5 || f.Duplicated != 1 || f.Lost != 0 {
				t.Errorf("reported delivered %d duplicated %d lost %d; want 5, 1, 0", f.Delivered, f.Duplicated, f.Lost)
			}
		})
	}
}

// TestLateDeliveryIsLost: a message the gateway delivers only after the drain (here when the session ends,
// at the tool's BYE) was not delivered in the run: it is lost, and its latency is not among the samples. The
// tool used to take its counts after the teardown, so such a message counted as delivered.
func TestLateDeliveryIsLost(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "msrp2msg"} {
		t.Run(mode, func(t *testing.T) {
			g := newFakeGW(t, func(n int64) fault {
				if n == 4 {
					return late
				}
				return pass
			})
			rep := runLoad(t, Config{GW: g.ua.addr, Mode: mode, Sessions: 1, Window: 1, Count: 5, Transport: "udp",
				Setup: "invite", Drain: 300 * time.Millisecond})
			f := rep.Flows[mode]
			if f.Sent != 5 || f.Delivered != 4 || f.Lost != 1 || f.Latency.N != 4 {
				t.Errorf("sent %d delivered %d lost %d latency samples %d; want 5, 4, 1, 4", f.Sent, f.Delivered, f.Lost, f.Latency.N)
			}
		})
	}
}

// TestDrainWaitsForEveryDelivery: the drain ends early only once every message was delivered or refused, each
// counted once. A message the gateway both delivered and refused used to count twice, so the drain ended
// while a later message was still on its way, and that message was reported lost.
func TestDrainWaitsForEveryDelivery(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "msrp2msg"} {
		t.Run(mode, func(t *testing.T) {
			g := newFakeGW(t, func(n int64) fault {
				switch n {
				case 1:
					return refuse
				case 2:
					return slow
				}
				return pass
			})
			rep := runLoad(t, Config{GW: g.ua.addr, Mode: mode, Sessions: 1, Window: 1, Count: 3, Transport: "udp",
				Setup: "invite", Drain: 3 * time.Second})
			f := rep.Flows[mode]
			if f.Sent != 3 || f.Delivered != 3 || f.Lost != 0 || f.Responses["500"] != 1 {
				t.Errorf("sent %d delivered %d lost %d, final responses %v; want 3, 3, 0 and one 500", f.Sent, f.Delivered, f.Lost, f.Responses)
			}
		})
	}
}

// TestInterruptedRunNoError: a run cut short (Ctrl-C) while a request waits for its answer reports that
// request as having no final response, not as answered with an error: the tool gave up on it, the gateway
// did not fail it. The phones' transactions used to report their end by the run's context as "error".
func TestInterruptedRunNoError(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "msrp2msg"} {
		t.Run(mode, func(t *testing.T) {
			g := newFakeGW(t, func(int64) fault { return pass })
			g.setAnswerDelay(func(n int64) time.Duration {
				if n == 4 {
					return 2 * time.Second
				}
				return 0
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			rep, err := Run(ctx, Config{GW: g.ua.addr, Mode: mode, Sessions: 1, Window: 1, Count: 5, Duration: time.Minute,
				Drain: 5 * time.Second, Transport: "udp", Setup: "invite", Logger: quietLogger()})
			if !errors.Is(err, context.DeadlineExceeded) || rep == nil {
				t.Fatalf("Run: %v, report %v; want the context's error and a report", err, rep)
			}
			f := rep.Flows[mode]
			if f.Sent != 5 || f.Responses["200"] != 4 || f.Responses["error"] != 0 || f.NoResponse != 1 {
				t.Errorf("sent %d, final responses %v, none %d; want 5, 4 × 200 and 1 without", f.Sent, f.Responses, f.NoResponse)
			}
			if rep.Setups.Byes != 1 || rep.Setups.ByeFailure != 0 {
				t.Errorf("byes %d (failed %d): the interrupted run must still end its session", rep.Setups.Byes, rep.Setups.ByeFailure)
			}
		})
	}
}

// TestFakeGatewayClean: the same fake without faults is reported clean (the fault test's counts come from
// the faults, not from the fake).
func TestFakeGatewayClean(t *testing.T) {
	g := newFakeGW(t, func(int64) fault { return pass })
	rep := runLoad(t, Config{GW: g.ua.addr, Mode: "both", Sessions: 2, Window: 1, Count: 10, Transport: "udp", Setup: "invite"})
	for name, f := range rep.Flows {
		if f.Sent != 20 || f.Delivered != 20 || f.Lost+f.Duplicated+f.Reordered != 0 {
			t.Errorf("%s: %+v", name, f)
		}
	}
}

// checkSentAtRate fails the test unless f's sends spanned what -rate plans for them, (sent-1)/rate, give or
// take how late the tool sent (max_send_late_ms): a first send late shortens the span by as much, a last one
// late stretches it. The bound is exact: a loaded machine (a CI run under -race) that holds the senders up
// does not fail it, a schedule that does not send at -rate does, unless the tool was as late as it is wrong.
func checkSentAtRate(t *testing.T, name string, f FlowReport, rate float64) {
	t.Helper()
	planned := float64(f.Sent-1) / rate
	span := float64(f.Sent-1) / f.AchievedRate
	if slack := f.SendLate/1e3 + 1e-3; f.AchievedRate <= 0 || math.Abs(span-planned) > slack {
		t.Errorf("%s: achieved %.3f/s, sends over %.1f ms; want %g/s, %.1f ms give or take %.1f ms (the latest send was %.1f ms late)",
			name, f.AchievedRate, span*1e3, rate, planned*1e3, slack*1e3, f.SendLate)
	}
}

// TestFakeGatewayRates: a gateway that delivers everything at once delivers at the rate it is sent to, and
// the report's two rates say so. Few messages, so that counting one interval too many (as delivered_rate did)
// shows: 10 over 9 intervals is 11 % more, a span 90 ms short. The deliveries' span is the sends' give or
// take the spread of the latencies, which the latest bounds: exact, however loaded the machine.
func TestFakeGatewayRates(t *testing.T) {
	g := newFakeGW(t, func(int64) fault { return pass })
	rep := runLoad(t, Config{GW: g.ua.addr, Mode: "both", Sessions: 2, Rate: 10, Count: 5, Transport: "udp", Setup: "invite"})
	for name, f := range rep.Flows {
		if f.Sent != 10 || f.Delivered != 10 {
			t.Fatalf("%s: sent %d delivered %d, want 10 and 10", name, f.Sent, f.Delivered)
		}
		checkSentAtRate(t, name, f, 10)
		sent, delivered := float64(f.Sent-1)/f.AchievedRate, float64(f.Delivered-1)/f.DeliveredRate
		if slack := f.Latency.Max/1e3 + 1e-3; f.DeliveredRate <= 0 || math.Abs(delivered-sent) > slack {
			t.Errorf("%s: achieved %.3f/s delivered %.3f/s: deliveries over %.1f ms, sends over %.1f ms; want the same give or take %.1f ms (the latest latency)",
				name, f.AchievedRate, f.DeliveredRate, delivered*1e3, sent*1e3, slack*1e3)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{
		{GW: "127.0.0.1:1", Mode: "sideways", Sessions: 1, Rate: 1, Transport: "udp", Setup: "invite", Duration: time.Second},
		{GW: "127.0.0.1:1", Mode: "both", Sessions: 0, Rate: 1, Transport: "udp", Setup: "invite", Duration: time.Second},
		{GW: "127.0.0.1:1", Mode: "both", Sessions: 1, Transport: "udp", Setup: "invite", Duration: time.Second},
		{GW: "127.0.0.1:1", Mode: "both", Sessions: 1, Rate: 1, Transport: "sctp", Setup: "invite", Duration: time.Second},
		{GW: "127.0.0.1:1", Mode: "both", Sessions: 1, Rate: 1, Transport: "udp", Setup: "carrier-pigeon", Duration: time.Second},
		{GW: "127.0.0.1:1", Mode: "both", Sessions: 1, Rate: 1, Arrival: "bursty", Transport: "udp", Setup: "invite", Duration: time.Second},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// With -pid and -metrics the report carries the gateway process's figures; here the gateway runs in this
// test process, which also serves its Go metrics.
func TestGatewayProcessFigures(t *testing.T) {
	gw := startGateway(t)
	metrics := httptest.NewServer(promhttp.Handler())
	defer metrics.Close()
	rep := runLoad(t, Config{Mode: "msg2msrp", Sessions: 2, Rate: 200, Count: 10, Transport: "udp", Setup: "invite",
		GW: gw.SIPAddr("udp"), PID: os.Getpid(), Metrics: metrics.URL})
	p := rep.GatewayProc
	if p == nil {
		t.Fatal("no gateway_process in the report")
	}
	if p.FDsStart <= 0 || p.FDsLoaded <= 0 || p.RSSKiBStart <= 0 || p.Messages != 20 {
		t.Errorf("process figures %+v", p)
	}
	// This process's threads ran during the load: put on a CPU at least once.
	if p.SlicesPerMsg == nil || *p.SlicesPerMsg <= 0 || p.RunQueueUsPerMsg == nil || *p.RunQueueUsPerMsg < 0 {
		t.Errorf("schedstat figures %v / %v, want read and positive", p.RunQueueUsPerMsg, p.SlicesPerMsg)
	}
	if rep.StealPct == nil || *rep.StealPct < 0 || *rep.StealPct > 100 {
		t.Errorf("machine_steal_pct %v, want read from /proc/stat, 0–100", rep.StealPct)
	}
	if p.GoroutinesStart <= 0 || p.GoroutinesLoaded <= 0 || p.GoroutinesEnd <= 0 {
		t.Errorf("goroutines %d / %d / %d, want all read from the metrics", p.GoroutinesStart, p.GoroutinesLoaded, p.GoroutinesEnd)
	}
}

// With nothing listening at -gw the run fails at once (exit 1) and says so, over UDP too: it used to send
// its INVITEs into the void and wait out sipgo's Timer B (32 s), then run the load phase anyway.
func TestNoGatewayFails(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			closed := freePortPair(t) // released: nothing listens there
			code, _, stderr := runBounded(t, "-gw", closed, "-transport", transport, "-mode", "msg2msrp", "-sessions", "2", "-rate", "50",
				"-duration", "1s", "-drain", "1s")
			if code != 1 || !strings.Contains(stderr, "no gateway answered at "+closed) || !strings.Contains(stderr, "connection refused") {
				t.Fatalf("exit %d, stderr:\n%s\nwant 1 and 'no gateway answered at %s ... connection refused'", code, stderr, closed)
			}
		})
	}
}

// runBounded runs the command with args and fails the test if it has not returned within 25 s: a generous
// bound for runs that end in about a second, under the 32 s of sipgo's Timer B they used to wait for.
func runBounded(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run(args, &out, &errb) }()
	select {
	case code = <-done:
		return code, out.String(), errb.String()
	case <-time.After(25 * time.Second):
		t.Fatalf("msrpgw-load %s still running after 25 s", strings.Join(args, " "))
		return 0, "", ""
	}
}

// silentGW is a UDP "gateway" that reads every datagram and answers none, or with answer set, answers each
// INVITE with its response (and nothing else). It keeps what it read.
type silentGW struct {
	pc     net.PacketConn
	answer int
	mu     sync.Mutex
	got    []*sip.Request
}

func newSilentGW(t *testing.T, answer int) *silentGW {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &silentGW{pc: pc, answer: answer}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			req, ok := msg.(*sip.Request)
			if err != nil || !ok {
				continue // the tool's CRLF probe
			}
			g.mu.Lock()
			g.got = append(g.got, req)
			g.mu.Unlock()
			if g.answer != 0 && req.Method == sip.INVITE {
				pc.WriteTo([]byte(sip.NewResponseFromRequest(req, g.answer, "Trying", nil).String()), from)
			}
		}
	}()
	return g
}

func (g *silentGW) requests(m sip.RequestMethod) []*sip.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	var rs []*sip.Request
	for _, r := range g.got {
		if r.Method == m {
			rs = append(rs, r)
		}
	}
	return rs
}

// A gateway that listens but never answers: each setup fails by the tool's -setup-timeout (not sipgo's
// 32 s Timer B, which the INVITEs used to wait for), and with no session up the run skips its load phase
// and fails.
func TestSilentGatewayTimesOut(t *testing.T) {
	for _, setup := range []string{"invite", "message"} {
		t.Run(setup, func(t *testing.T) {
			g := newSilentGW(t, 0)
			code, stdout, stderr := runBounded(t, "-gw", g.pc.LocalAddr().String(), "-setup", setup, "-setup-timeout", "1s", "-mode", "msg2msrp",
				"-sessions", "2", "-rate", "50", "-duration", "1s", "-drain", "1s", "-json")
			if code != 1 || !strings.Contains(stderr, "no session could be set up") || !strings.Contains(stderr, "every setup timed out") {
				t.Fatalf("exit %d, stderr:\n%s\nwant 1, 'no session could be set up' and 'every setup timed out'", code, stderr)
			}
			var rep Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("report: %v\n%s", err, stdout)
			}
			if rep.Setups.Count != 0 || rep.Setups.Failures != 2 || rep.Setups.Why["timeout"] != 2 {
				t.Errorf("setups %d ok, %d failed %v; want 0, and 2 timeouts", rep.Setups.Count, rep.Setups.Failures, rep.Setups.Why)
			}
			if f := rep.Flows["msg2msrp"]; f.Sent != 0 {
				t.Errorf("sent %d messages with no session up, want none (no load phase)", f.Sent)
			}
		})
	}
}

// An INVITE answered only provisionally is CANCELled when the setup times out (RFC 3261 §9.1: same
// Request-URI, top Via, Call-ID and CSeq number).
func TestProvisionalInviteCancelled(t *testing.T) {
	g := newSilentGW(t, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second) // as runBounded
	defer cancel()
	rep, err := Run(ctx, Config{GW: g.pc.LocalAddr().String(), Mode: "msg2msrp", Sessions: 1, Rate: 50, Duration: time.Second,
		Drain: time.Second, Transport: "udp", Setup: "invite", SetupTimeout: time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Setups.Why["timeout"] != 1 {
		t.Fatalf("setup failures %v, want one timeout", rep.Setups.Why)
	}
	invites := g.requests(sip.INVITE)
	if len(invites) == 0 {
		t.Fatal("no INVITE")
	}
	inv := invites[0]
	var cancels []*sip.Request
	for deadline := time.Now().Add(10 * time.Second); len(cancels) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		cancels = g.requests(sip.CANCEL)
	}
	if len(cancels) != 1 {
		t.Fatalf("%d CANCELs, want 1", len(cancels))
	}
	c := cancels[0]
	if c.Recipient.String() != inv.Recipient.String() || c.CallID().Value() != inv.CallID().Value() ||
		c.Via().Params.GetOr("branch", "") != inv.Via().Params.GetOr("branch", "") ||
		c.CSeq().SeqNo != inv.CSeq().SeqNo || c.CSeq().MethodName != sip.CANCEL {
		t.Errorf("CANCEL\n%s\ndoes not match the INVITE\n%s", c, inv)
	}
}

// -h prints the flags and the exit statuses, and is no error.
func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-rate") ||
		!strings.Contains(errb.String(), "Exit status:") || !strings.Contains(errb.String(), "  3  the run completed but was not clean") {
		t.Fatalf("-h: exit %d, stderr %q; want 0, the flags and the exit statuses", code, errb.String())
	}
}

// The exit status is the run's verdict: 0 for a clean run, 3 for one that completed with messages lost,
// duplicated or reordered, with one line per fault on stderr and the full report on stdout. It used to be 0
// whatever the run counted, so scripts and CI could not tell without reading the JSON.
func TestExitStatusIsVerdict(t *testing.T) {
	clean := func(int64) fault { return pass }
	only := func(at int64, f fault) func(int64) fault {
		return func(n int64) fault {
			if n == at {
				return f
			}
			return pass
		}
	}
	// Two sessions each: every fault below happens once per session.
	cases := []struct {
		name  string
		plan  func(n int64) fault
		mode  string
		count string // messages per session
		code  int
		fault string // the line on stderr
	}{
		{"clean msg2msrp", clean, "msg2msrp", "5", exitClean, ""},
		{"clean both", clean, "both", "5", exitClean, ""},
		{"lossy msg2msrp", faultPlan, "msg2msrp", "10", exitFaulted, "msg2msrp: 2 lost, 2 duplicated, 2 reordered of 20 sent"},
		{"lossy msrp2msg", faultPlan, "msrp2msg", "10", exitFaulted, "msrp2msg: 2 lost, 2 duplicated, 2 reordered of 20 sent"},
		{"late only msg2msrp", only(3, late), "msg2msrp", "5", exitFaulted, "msg2msrp: 2 lost of 10 sent"},
		{"swap only msrp2msg", only(2, hold), "msrp2msg", "5", exitFaulted, "msrp2msg: 2 reordered of 10 sent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newFakeGW(t, tc.plan)
			code, stdout, stderr := runBounded(t, "-gw", g.ua.addr, "-mode", tc.mode, "-sessions", "2", "-window", "1", "-count", tc.count,
				"-duration", "20s", "-drain", "500ms", "-json")
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.fault != "" && !strings.Contains(stderr, "msrpgw-load: not clean: "+tc.fault+"\n") {
				t.Errorf("stderr:\n%s\nwant 'not clean: %s'", stderr, tc.fault)
			}
			if tc.fault == "" && strings.Contains(stderr, "not clean") {
				t.Errorf("clean run, stderr:\n%s", stderr)
			}
			var rep Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Flows) == 0 {
				t.Fatalf("report (it still goes to stdout): %v\n%s", err, stdout)
			}
		})
	}
}

// -conn-per-session has each session dial its own MSRP connection, which only a session-first setup does:
// with -setup message the gateway dials and the tool answers passive. The combination used to be taken,
// each chat's session then living on a private endpoint that does not listen while its SDP named the shared
// listener, so the gateway's connection found no session there (481) and every setup failed, blamed on the
// gateway. It is refused as bad flags (exit 2).
func TestConnPerSessionNeedsSessionFirst(t *testing.T) {
	g := newFakeGW(t, func(int64) fault { return pass })
	_, err := Run(context.Background(), Config{GW: g.ua.addr, Mode: "msg2msrp", Sessions: 1, Window: 1, Count: 1, Duration: time.Second,
		Transport: "udp", Setup: "message", ConnPerSession: true, SetupTimeout: time.Second, Logger: quietLogger()})
	if !errors.Is(err, ErrBadConfig) {
		t.Fatalf("-setup message -conn-per-session: %v, want %v", err, ErrBadConfig)
	}
	code, _, stderr := runBounded(t, "-gw", g.ua.addr, "-setup", "message", "-conn-per-session", "-window", "1", "-count", "1", "-setup-timeout", "1s")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
	}
}

// -rate is the flow's rate over all sessions, whatever their number: with sessions that do not divide evenly
// among the four sender shards, each session still gets its share, so a -count run goes at -rate to its end.
// Each shard used to send at rate/4 whatever it owned: at 5 sessions shard 0 (two of them) sent at half the
// rate per session of the others and went on alone at a quarter of -rate once they were done, and the run's
// achieved rate was about 70 % of the one asked for.
func TestRateWithUnevenShards(t *testing.T) {
	g := newFakeGW(t, func(int64) fault { return pass })
	rep := runLoad(t, Config{GW: g.ua.addr, Mode: "msg2msrp", Sessions: 5, Rate: 100, Count: 4, Transport: "udp", Setup: "invite"})
	f := rep.Flows["msg2msrp"]
	if f.Sent != 20 || f.Delivered != 20 {
		t.Fatalf("sent %d delivered %d, want 20 and 20", f.Sent, f.Delivered)
	}
	checkSentAtRate(t, "msg2msrp", f, 100)
}

// Over TCP the tool's own SIP connections to the gateway (and the gateway's to the phones) are the
// gateway's fds as well: they are closed once the sessions ended, before the gateway's fds are counted
// again, so fds_end shows what the gateway left behind and the wait for it to settle ends. They used to stay
// open until the run returned: every TCP run reported fds that the gateway had not leaked, after waiting the
// whole -drain for them to go. (The gateway runs in this process, so its fds are this process's.)
func TestTCPFDsSettle(t *testing.T) {
	gw := startGateway(t)
	rep := runLoad(t, Config{Mode: "both", Sessions: 2, Window: 1, Count: 5, Transport: "tcp", Setup: "invite",
		GW: gw.SIPAddr("tcp"), PID: os.Getpid(), Drain: 2 * time.Second})
	p := rep.GatewayProc
	if p == nil || p.FDsStart <= 0 {
		t.Fatalf("process figures %+v", p)
	}
	if p.FDsEnd > p.FDsStart {
		t.Errorf("fds %d -> %d -> %d: more at the end than at the start", p.FDsStart, p.FDsLoaded, p.FDsEnd)
	}
}

// An interrupted open-loop run stops at once, however far off its next message is: the senders used to sleep
// until it was due (up to the whole -duration at low rates) before they saw the run had ended.
func TestInterruptStopsPacedSenders(t *testing.T) {
	g := newFakeGW(t, func(int64) fault { return pass })
	const interrupt = 500 * time.Millisecond // set up, and the first message sent
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), interrupt)
	defer cancel()
	rep, err := Run(ctx, Config{GW: g.ua.addr, Mode: "msg2msrp", Sessions: 1, Rate: 0.1, Duration: time.Minute,
		Drain: time.Second, Transport: "udp", Setup: "invite", Logger: quietLogger()})
	if !errors.Is(err, context.DeadlineExceeded) || rep == nil {
		t.Fatalf("Run: %v, report %v; want the context's error and a report", err, rep)
	}
	if took := time.Since(start) - interrupt; took > 2*time.Second {
		t.Errorf("Run returned %v after the interrupt, want at once", took)
	}
	if f := rep.Flows["msg2msrp"]; f.Sent != 1 {
		t.Errorf("sent %d, want 1 (the first, at once)", f.Sent)
	}
}

// Bad flags are exit 2 before anything runs: a stray argument (flag parsing stops there, and the flags after
// it would be dropped), a rate or churn that is not a finite number, negative durations and counts.
func TestBadFlagsExit2(t *testing.T) {
	closed := freePortPair(t)
	for _, args := range [][]string{
		{"-rate", "50", "stray"},
		{"-rate", "50", "5000", "-mode", "sideways"},
		{"-rate", "NaN"},
		{"-rate", "+Inf"},
		{"-rate", "50", "-churn", "NaN"},
		{"-idle", "-5", "-rate", "50"},
		{"-rate", "50", "-drain", "-1s"},
		{"-rate", "50", "-setup-timeout", "-1s"},
		{"-rate", "50", "-setup-concurrency", "-3"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, stderr := runBounded(t, append([]string{"-gw", closed}, args...)...)
			if code != exitUsage {
				first, _, _ := strings.Cut(stderr, "\n")
				t.Errorf("%q: exit %d (%s), want %d (bad flags)", args, code, first, exitUsage)
			}
		})
	}
}

// The human report shows the gateway's goroutines (before, loaded, after) as the JSON does.
func TestHumanReportShowsGoroutines(t *testing.T) {
	rep := &Report{Flows: map[string]FlowReport{}, GatewayProc: &ProcReport{PID: 1, GoroutinesStart: 17, GoroutinesLoaded: 4242, GoroutinesEnd: 19}}
	var js, human bytes.Buffer
	json.NewEncoder(&js).Encode(rep)
	printReport(&human, rep)
	if !strings.Contains(js.String(), `"goroutines_loaded":4242`) {
		t.Fatalf("JSON: %s", js.String())
	}
	if !strings.Contains(human.String(), "4242") {
		t.Errorf("human report has no goroutine figures (JSON: goroutines 17 -> 4242 -> 19):\n%s", human.String())
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
)

// Config is one load run.
type Config struct {
	GW               string        // gateway SIP address, 127.0.0.1:port
	Mode             string        // msg2msrp | msrp2msg | both
	Sessions         int           // gateway sessions the traffic is spread over
	Rate             float64       // open loop: messages per second per flow, over all sessions (0 = unpaced)
	Arrival          string        // open loop: even (every 1/Rate) | poisson (independent users; default even)
	Window           int           // closed loop: requests outstanding per flow (0 = no bound)
	Duration         time.Duration // sending time
	Count            int64         // messages per session per flow (0 = until Duration); Duration still bounds the run
	Drain            time.Duration // how long to wait after sending for deliveries and responses
	Transport        string        // udp | tcp, for the tool's SIP requests and URIs
	Setup            string        // invite (session first) | message (MESSAGE first: a warm-up MESSAGE per session)
	SetupConcurrency int           // setups in flight at once
	SetupTimeout     time.Duration // per setup
	Churn            float64       // extra sessions set up and torn down per second during the run
	Idle             int           // idle soak: this many sessions set up session first, held for Duration, ended
	ConnPerSession   bool          // each session dials its own MSRP connection instead of sharing one
	PID              int           // the gateway's process id, for CPU/RSS/fds from /proc (0 = not measured)
	Metrics          string        // the gateway's Prometheus URL, for go_goroutines ("" = not measured)
	Progress         io.Writer     // one line a second (nil = none)
	Logger           *slog.Logger  // nil = discard
}

// Errors a caller branches on.
var (
	ErrBadConfig = errors.New("msrpgw-load: bad configuration")
	ErrNoGateway = errors.New("no gateway answered")
)

func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, a...)...)
	}
	if c.Idle > 0 {
		c.Sessions, c.Setup = c.Idle, "invite"
	}
	switch {
	case c.GW == "":
		return bad("no gateway address")
	case c.Mode != "msg2msrp" && c.Mode != "msrp2msg" && c.Mode != "both":
		return bad("mode %q is not msg2msrp, msrp2msg or both", c.Mode)
	case c.Sessions < 1:
		return bad("sessions %d, want at least 1", c.Sessions)
	case math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || math.IsNaN(c.Churn) || math.IsInf(c.Churn, 0):
		return bad("rate %g or churn %g is not a finite number", c.Rate, c.Churn)
	case c.Rate < 0 || c.Window < 0 || c.Churn < 0 || c.Count < 0:
		return bad("negative rate, window, churn or count")
	case c.Idle < 0 || c.Drain < 0 || c.SetupTimeout < 0 || c.SetupConcurrency < 0:
		return bad("negative idle, drain, setup-timeout or setup-concurrency")
	case c.Idle == 0 && c.Rate == 0 && c.Window == 0:
		return bad("neither -rate (open loop) nor -window (closed loop) given")
	case c.Transport != "udp" && c.Transport != "tcp":
		return bad("transport %q is not udp or tcp", c.Transport)
	case c.Arrival != "" && c.Arrival != "even" && c.Arrival != "poisson":
		return bad("arrival %q is not even or poisson", c.Arrival)
	case c.Setup != "invite" && c.Setup != "message":
		return bad("setup %q is not invite or message", c.Setup)
	case c.ConnPerSession && c.Setup == "message":
		// MESSAGE first the gateway dials and the tool answers passive: there is no connection of the tool's
		// to give each session (its private endpoint does not listen, so the gateway's SENDs would get 481).
		return bad("-conn-per-session needs -setup invite: MESSAGE first the gateway dials, not the tool")
	case c.Duration <= 0:
		return bad("duration %s, want > 0", c.Duration)
	}
	if c.Arrival == "" {
		c.Arrival = "even"
	}
	if c.SetupConcurrency <= 0 {
		c.SetupConcurrency = 100
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func (c *Config) flows() []flowID {
	switch {
	case c.Idle > 0:
		return nil
	case c.Mode == "msg2msrp":
		return []flowID{msgToMSRP}
	case c.Mode == "msrp2msg":
		return []flowID{msrpToMsg}
	}
	return []flowID{msgToMSRP, msrpToMsg}
}

// Report is the summary of a run (the -json output).
type Report struct {
	Date            string                `json:"date"`
	Gateway         string                `json:"gateway"`
	Mode            string                `json:"mode"`
	Transport       string                `json:"transport"`
	Sessions        int                   `json:"sessions"`
	Rate            float64               `json:"rate"`
	Window          int                   `json:"window"`
	DurationS       float64               `json:"duration_s"`
	SetupMode       string                `json:"setup_mode"`
	Arrival         string                `json:"arrival"`
	Setups          SetupReport           `json:"setups"`
	Flows           map[string]FlowReport `json:"flows"`
	Churn           *SetupReport          `json:"churn,omitempty"`
	ConnLost        int64                 `json:"msrp_connections_lost"`
	ByesFromGateway int64                 `json:"byes_from_gateway"`
	GatewayProc     *ProcReport           `json:"gateway_process,omitempty"`
	ToolCPUMs       float64               `json:"tool_cpu_ms"`
	// StealPct is the share of the machine's CPU time during the load phase that the host took from its
	// vCPUs (steal time in /proc/stat): 0 on bare metal; omitted where /proc/stat cannot be read.
	StealPct *float64 `json:"machine_steal_pct,omitempty"`
}

// ProcReport is what /proc/PID said about the gateway: CPU over the load phase (setups excluded) per
// delivered message, RSS and open files before setup, when loaded (after setup, or at the end of the idle
// hold) and after the sessions ended.
type ProcReport struct {
	PID         int     `json:"pid"`
	CPUMs       float64 `json:"cpu_ms"`
	Messages    int64   `json:"messages"`
	CPUUsPerMsg float64 `json:"cpu_us_per_msg"`
	// Over the same phase, per delivered message: how long the gateway's threads were ready to run but
	// waiting for a CPU (a share of its latency that is the machine's, e.g. the load tool on the same cores)
	// and how often they were put on one (its wake-ups). Omitted where the kernel keeps no schedstat.
	RunQueueUsPerMsg *float64 `json:"runqueue_wait_us_per_msg,omitempty"`
	SlicesPerMsg     *float64 `json:"cpu_slices_per_msg,omitempty"`
	RSSKiBStart      int64    `json:"rss_kib_start"`
	RSSKiBPeak       int64    `json:"rss_kib_loaded"`
	RSSKiBMax        int64    `json:"rss_kib_max"` // highest of the once-a-second samples from setup to the end of the BYEs, and the others
	RSSKiBEnd        int64    `json:"rss_kib_end"`
	FDsStart         int      `json:"fds_start"`
	FDsLoaded        int      `json:"fds_loaded"`
	FDsEnd           int      `json:"fds_end"`
	// Goroutines, from go_goroutines at -metrics (a Go gateway); omitted without -metrics.
	GoroutinesStart  int `json:"goroutines_start,omitempty"`
	GoroutinesLoaded int `json:"goroutines_loaded,omitempty"`
	GoroutinesEnd    int `json:"goroutines_end,omitempty"`
}

// loader is one run's state.
type loader struct {
	cfg   Config
	start time.Time
	flows map[flowID]*flowStats
	page  *pageSide
	sess  *sessionSide
	wire  *wireClock

	mu     sync.Mutex
	chats  []*chat
	warmed []chan struct{} // closed when session i's warm-up message came out at the client

	setups *setupStats
	churn  *setupStats

	rssMax int64 // highest gateway RSS sampled (KiB), under mu
}

func (l *loader) now() time.Duration { return time.Since(l.start) }

// startPage starts the phones. MSRP→MESSAGE reorders are counted in the order the phones' sockets read the
// messages (arrival.go).
func (l *loader) startPage() error {
	var arrived func(stamp)
	if f := l.flows[msrpToMsg]; f != nil {
		f.byArrival, arrived = true, f.arrived
	}
	var err error
	l.page, err = newPageSide(l.cfg.GW, l.cfg.Transport, l.pageReceived, l.wire, arrived)
	return err
}

func phoneUser(i int) string  { return "lp" + strconv.Itoa(i) }
func clientUser(i int) string { return "lc" + strconv.Itoa(i) }

func (l *loader) phoneURI(user string) string  { return l.page.uri(user, l.cfg.Transport) }
func (l *loader) clientURI(user string) string { return l.sess.uri(user, l.cfg.Transport) }

// Run performs one load run against the gateway at cfg.GW and returns its report. It stops by itself after
// setup, Duration (or Count) and the drain wait; ctx ends it early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	l := &loader{cfg: cfg, start: time.Now(), flows: make(map[flowID]*flowStats), setups: newSetupStats(),
		churn: newSetupStats(), wire: newWireClock()}
	for _, f := range cfg.flows() {
		l.flows[f] = newFlowStats(cfg.Sessions)
	}
	l.chats = make([]*chat, cfg.Sessions)
	l.warmed = make([]chan struct{}, cfg.Sessions)
	for i := range l.warmed {
		l.warmed[i] = make(chan struct{})
	}
	if err := probeGateway(ctx, cfg.GW, cfg.Transport); err != nil {
		return nil, err
	}
	var err error
	if err := l.startPage(); err != nil {
		return nil, err
	}
	defer l.page.close()
	if l.sess, err = newSessionSide(cfg.GW, cfg.Transport, cfg.ConnPerSession, cfg.Logger.With("side", "clients")); err != nil {
		return nil, err
	}
	defer l.sess.close()
	l.sess.inviteFor = l.inviteFor
	l.sess.onChat = func(c *chat) {
		l.mu.Lock()
		l.chats[c.idx] = c
		l.mu.Unlock()
	}
	l.sess.onMessage = l.msrpReceived

	rep := &Report{
		Date: time.Now().UTC().Format(time.RFC3339), Gateway: cfg.GW, Mode: cfg.Mode, Transport: cfg.Transport,
		Sessions: cfg.Sessions, Rate: cfg.Rate, Window: cfg.Window, DurationS: cfg.Duration.Seconds(),
		SetupMode: cfg.Setup, Arrival: cfg.Arrival, Flows: make(map[string]FlowReport),
	}
	if cfg.Idle > 0 {
		rep.Mode = "idle"
	}
	tool0, _ := readProc(0)
	gw0 := l.sampleGW()

	l.setupAll(ctx)
	gw1 := l.sampleGW()
	cpu1, cpu1Err := readCPUTimes()

	loadCtx, stopLoad := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(1)
	go func() { defer bg.Done(); l.progress(loadCtx) }()
	// The RSS is sampled through the teardown too: the BYEs of 100,000 sessions take the gateway higher than
	// holding them did.
	rssCtx, stopRSS := context.WithCancel(ctx)
	rssDone := make(chan struct{})
	go func() { defer close(rssDone); l.watchRSS(rssCtx) }()
	switch {
	case l.setups.noneUp():
		// Nothing to measure: no load phase, and the run fails (main.go) with the setups' failures.
	case cfg.Idle > 0:
		select {
		case <-time.After(cfg.Duration):
		case <-ctx.Done():
		}
	default:
		if cfg.Churn > 0 {
			bg.Add(1)
			go func() { defer bg.Done(); l.churnLoop(loadCtx) }()
		}
		l.sendAll(ctx)
		l.drain(ctx)
	}
	stopLoad()
	bg.Wait()
	gw2 := l.sampleGW()
	// The flows are counted here, at the end of the drain, where the gateway's CPU for them is: a message
	// that comes out later (the teardown's BYEs can flush what a gateway held) was not delivered in the run.
	var delivered int64
	for f, s := range l.flows {
		fr := s.report()
		rep.Flows[string(f)] = fr
		delivered += fr.Delivered
	}
	if cpu2, err := readCPUTimes(); err == nil && cpu1Err == nil {
		rep.StealPct = stealPercent(cpu1, cpu2)
	}
	if cfg.Idle > 0 {
		gw1 = gw2 // the idle soak's loaded figures are those at the end of the hold
	}

	l.teardown(ctx)
	stopRSS()
	<-rssDone
	// The sessions are over: close the tool's SIP and MSRP sockets before the gateway's fds are counted
	// again. Over TCP the tool's SIP connections (and the gateway's to the tool's listeners) are the gateway's
	// fds too; left open, they showed as fds the gateway had not given back, and settleGW waited the whole
	// drain for them.
	l.page.close()
	l.sess.close()
	gw3 := l.settleGW(ctx, gw0)
	tool1, _ := readProc(0)

	rep.Setups = l.setups.report()
	if cfg.Churn > 0 {
		c := l.churn.report()
		rep.Churn = &c
	}
	rep.ConnLost = l.sess.connLost.Load()
	rep.ByesFromGateway = l.sess.byesIn.Load()
	rep.ToolCPUMs = float64(tool1.cpu-tool0.cpu) / 1e6
	if cfg.PID > 0 {
		p := &ProcReport{PID: cfg.PID, Messages: delivered,
			RSSKiBStart: gw0.rssKiB, RSSKiBPeak: gw1.rssKiB, RSSKiBEnd: gw3.rssKiB,
			FDsStart: gw0.fds, FDsLoaded: gw1.fds, FDsEnd: gw3.fds,
			GoroutinesStart: gw0.goroutines, GoroutinesLoaded: gw1.goroutines, GoroutinesEnd: gw3.goroutines}
		l.mu.Lock()
		p.RSSKiBMax = max(l.rssMax, gw0.rssKiB, gw1.rssKiB, gw2.rssKiB, gw3.rssKiB)
		l.mu.Unlock()
		if cfg.Idle == 0 {
			p.CPUMs = float64(gw2.cpu-gw1.cpu) / 1e6
			if delivered > 0 {
				p.CPUUsPerMsg = float64(gw2.cpu-gw1.cpu) / 1e3 / float64(delivered)
				if gw1.schedOK && gw2.schedOK {
					wait := float64(gw2.runWait-gw1.runWait) / 1e3 / float64(delivered)
					slices := float64(gw2.slices-gw1.slices) / float64(delivered)
					p.RunQueueUsPerMsg, p.SlicesPerMsg = &wait, &slices
				}
			}
		}
		rep.GatewayProc = p
	}
	return rep, ctx.Err()
}

// probeWait is how long probeGateway waits for the ICMP error of a UDP port nobody listens on; over
// loopback the kernel has it on the socket before the probe's write returns.
const probeWait = 100 * time.Millisecond

// probeGateway fails at once (ErrNoGateway) when nothing listens at the gateway's address, instead of after
// every setup timed out: over TCP the connection is refused; over UDP a datagram of CRLFs (a keep-alive,
// which SIP servers drop) draws an ICMP port unreachable, which a connected socket reads as
// ECONNREFUSED. Anything else (no error within probeWait) passes: a gateway that listens but never answers
// fails by -setup-timeout.
func probeGateway(ctx context.Context, gw, transport string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, transport, gw)
	if err == nil && transport == "udp" {
		conn.SetDeadline(time.Now().Add(probeWait))
		if _, err = conn.Write([]byte("\r\n\r\n")); err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			err = nil
		}
	}
	if conn != nil {
		conn.Close()
	}
	if err != nil {
		return fmt.Errorf("%w at %s over %s: %w (is it running, on this address and transport?)", ErrNoGateway, gw, transport, err)
	}
	return nil
}

func (l *loader) sampleGW() procSample {
	if l.cfg.PID <= 0 {
		return procSample{}
	}
	s, err := readProc(l.cfg.PID)
	if err != nil {
		l.cfg.Logger.Warn("gateway process", "err", err)
	}
	if l.cfg.Metrics != "" {
		if s.goroutines, err = readGoroutines(l.cfg.Metrics); err != nil {
			l.cfg.Logger.Warn("gateway metrics", "err", err)
		}
	}
	return s
}

// watchRSS samples the gateway's RSS once a second from the end of setup to the end of the BYEs, for its peak.
func (l *loader) watchRSS(ctx context.Context) {
	if l.cfg.PID <= 0 {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s, err := readProc(l.cfg.PID); err == nil {
			l.mu.Lock()
			l.rssMax = max(l.rssMax, s.rssKiB)
			l.mu.Unlock()
		}
	}
}

// settleGW samples the gateway after teardown, giving it up to the drain time to close what the sessions
// held (its fd count, and with -metrics its goroutine count, back to where they started).
func (l *loader) settleGW(ctx context.Context, before procSample) procSample {
	if l.cfg.PID <= 0 {
		return procSample{}
	}
	deadline := time.Now().Add(l.cfg.Drain)
	for {
		s := l.sampleGW()
		settled := s.fds <= before.fds && (l.cfg.Metrics == "" || s.goroutines <= before.goroutines)
		if settled || time.Now().After(deadline) || ctx.Err() != nil {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inviteFor maps the gateway's INVITE (MESSAGE-first) to a session by its Request-URI user.
func (l *loader) inviteFor(user string) (int, bool) {
	n, ok := strings.CutPrefix(user, "lc")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i >= l.cfg.Sessions {
		return 0, false
	}
	return i, true
}

// phoneIndex maps a phone's user ("lp<i>") to its session; -1 for anything else.
func phoneIndex(user string) int {
	n, ok := strings.CutPrefix(user, "lp")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// pageReceived counts a MESSAGE the gateway delivered to a phone: delivered only when it reached the phone of
// the session stamped in it (a message on another session's phone is the gateway's mistake: lost there, and
// counted among the others here). A MESSAGE→MSRP message coming back to a phone is misrouted too.
func (l *loader) pageReceived(req *sip.Request) int {
	now := l.now()
	st, err := parseBody(req.Body())
	f := l.flows[msrpToMsg]
	switch {
	case err == nil && st.flow == msgToMSRP && l.flows[msgToMSRP] != nil:
		l.flows[msgToMSRP].receivedMisrouted() // back at the side it came from
	case f == nil:
	case err == nil && st.flow == msrpToMsg && st.session == phoneIndex(req.Recipient.User):
		f.received(st, now, -1) // no wire latency: the phones' UA reads through sipgo
	case err == nil && st.flow == msrpToMsg:
		f.receivedMisrouted()
	default:
		f.receivedForeign() // notifications and anything else the gateway generated
	}
	return 200
}

// msrpReceived counts a message the gateway delivered on an MSRP session; like pageReceived, only on the
// session stamped in it.
func (l *loader) msrpReceived(c *chat, m *msrp.Incoming) int {
	now := l.now()
	st, err := parseBody(m.Body)
	switch {
	case err == nil && st.flow == warmUp:
		if st.session == c.idx && c.idx >= 0 && c.idx < len(l.warmed) {
			l.mu.Lock()
			select {
			case <-l.warmed[c.idx]:
			default:
				close(l.warmed[c.idx])
			}
			l.mu.Unlock()
		}
	case err == nil && st.flow == msgToMSRP && l.flows[msgToMSRP] != nil && st.session == c.idx:
		wire, ok := l.wire.latency(st, m.Received)
		if !ok {
			wire = -1
		}
		l.flows[msgToMSRP].received(st, now, wire)
	case err == nil && st.flow == msgToMSRP && l.flows[msgToMSRP] != nil:
		l.flows[msgToMSRP].receivedMisrouted()
	case err == nil && st.flow == msrpToMsg && l.flows[msrpToMsg] != nil:
		l.flows[msrpToMsg].receivedMisrouted() // back at the side it came from
	default:
		if f := l.flows[msgToMSRP]; f != nil {
			f.receivedForeign()
		}
	}
	return 200
}

// errorClass turns a setup error into a short, countable reason.
func errorClass(err error) string {
	var dr *sipgo.ErrDialogResponse
	var dv sipgo.ErrDialogResponse
	var se *msrp.StatusError
	switch {
	case errors.As(err, &dr):
		return "INVITE " + strconv.Itoa(int(dr.Res.StatusCode))
	case errors.As(err, &dv):
		return "INVITE " + strconv.Itoa(int(dv.Res.StatusCode))
	case errors.As(err, &se):
		return "MSRP " + strconv.Itoa(se.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

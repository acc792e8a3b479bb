// Command msrpgw-load is a load generator for SIP MESSAGE ⇄ MSRP gateways. It plays both sides around the
// gateway — page-mode phones (SIP MESSAGE over UDP or TCP) and session-mode clients (INVITE + MSRP) — and
// counts what comes out: delivered, lost, duplicated, reordered (per session, against send order), latency
// from request sent to message out, final responses, session setups, and the gateway's CPU per message, RSS
// and open files when given its PID.
//
// It works against any gateway with the OpenSIPS msrp_gateway routing: MESSAGE key $tu:$fu, INVITE key
// $fu:$tu, MESSAGE-side coordinates from the INVITE's From/To/Request-URI. Every URI it uses is a
// 127.0.0.1:port literal on ports it binds itself.
//
// Its exit status is the run's verdict: 0 clean; 1 nothing or not all measured (no gateway, no session set
// up, interrupted); 2 bad flags; 3 completed but not clean (messages lost, duplicated, reordered, unsent,
// unanswered or refused; setups, BYEs or MSRP connections failed), with one line per fault on stderr.
//
//	msrpgw-load -gw 127.0.0.1:5060 -mode msg2msrp -sessions 100 -rate 5000 -duration 10s -json
//	msrpgw-load -gw 127.0.0.1:5060 -mode msrp2msg -sessions 1 -window 32 -duration 10s
//	msrpgw-load -gw 127.0.0.1:5060 -idle 15000 -conn-per-session -duration 30s -pid $(pidof msrpgw)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/internal/tune"
)

// toolHeapFloor is the heap the tool grows to before its collector runs: 1 GiB, enough that a 10 s run
// at 10,000 msg/s collects a few times at most.
const toolHeapFloor = 1 << 30

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msrpgw-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.GW, "gw", "127.0.0.1:5060", "gateway SIP address")
	fs.StringVar(&cfg.Mode, "mode", "msg2msrp", "msg2msrp | msrp2msg | both")
	fs.IntVar(&cfg.Sessions, "sessions", 1, "gateway sessions to spread the messages over")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: messages per second per direction, over all sessions")
	fs.StringVar(&cfg.Arrival, "arrival", "even", "open loop: even (one every 1/rate) | poisson (independent users: random gaps, mean 1/rate)")
	fs.IntVar(&cfg.Window, "window", 0, "closed loop: requests outstanding per direction")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "sending time (idle soak: hold time)")
	fs.Int64Var(&cfg.Count, "count", 0, "messages per session per direction (0 = until -duration)")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "wait after sending for deliveries and responses (at most; once all are in, one second more for late duplicates)")
	fs.StringVar(&cfg.Transport, "transport", "udp", "udp | tcp for SIP")
	fs.StringVar(&cfg.Setup, "setup", "invite", "invite (session first) | message (MESSAGE first, a warm-up MESSAGE per session)")
	fs.IntVar(&cfg.SetupConcurrency, "setup-concurrency", 100, "session setups in flight at once")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 10*time.Second, "per session setup")
	fs.Float64Var(&cfg.Churn, "churn", 0, "extra sessions set up and torn down per second during the run")
	fs.IntVar(&cfg.Idle, "idle", 0, "idle soak: set up N sessions session first (the tool dialling), hold -duration, end them")
	fs.BoolVar(&cfg.ConnPerSession, "conn-per-session", false, "each session dials its own MSRP connection (default: one shared, RFC 4975 reuse); -setup invite only")
	fs.IntVar(&cfg.PID, "pid", 0, "gateway process id: CPU µs per message, RSS and fds from /proc/PID")
	fs.StringVar(&cfg.Metrics, "metrics", "", "gateway Prometheus URL (e.g. http://127.0.0.1:8080/metrics): goroutines before, loaded, after (with -pid)")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout")
	verbose := fs.Bool("v", false, "log the tool's warnings on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the tool's own CPU profile to this file (to see what the tool costs)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: msrpgw-load [flags]")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), exitHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitClean // -h asked for the usage, which went to stderr
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		// Flags stop at the first argument that is not one: what follows it would be silently dropped.
		fmt.Fprintf(stderr, "msrpgw-load: unexpected argument %q (flags only)\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	cfg.Progress = stderr
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Messages the gateway generates may be larger than sipgo's default parse limit allows; be as lenient
	// as the gateway (4× its default 32 KiB maximum).
	if sip.ParseMaxMessageLength < 4*32768 {
		sip.ParseMaxMessageLength = 4 * 32768
	}
	// The tool's own garbage collection adds to the latencies it measures (about half of the p99 at
	// 5,000/s with Go's default, docs/PERFORMANCE.md): it lets its heap grow to toolHeapFloor first.
	floorCtx, stopFloor := context.WithCancel(context.Background())
	defer stopFloor()
	tune.StartHeapFloor(floorCtx, slog.New(slog.DiscardHandler), toolHeapFloor)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "msrpgw-load:", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "msrpgw-load:", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the first signal ends the run (its BYEs and report follow); a second kills it
	rep, err := Run(ctx, cfg)
	if errors.Is(err, ErrBadConfig) {
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return exitUsage
	}
	if rep == nil {
		fmt.Fprintln(stderr, "msrpgw-load:", err)
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "msrpgw-load: writing the JSON report:", err)
			return exitFailed
		}
	} else {
		printReport(stdout, rep)
	}
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw-load: interrupted:", err)
		return exitFailed
	}
	if rep.Setups.Count == 0 && rep.Setups.Failures > 0 {
		// Nothing was measured: say so, as a failure (a gateway not running, or refusing every session).
		why := ""
		if rep.Setups.Why["timeout"] == rep.Setups.Failures {
			why = fmt.Sprintf(": every setup timed out (-setup-timeout %s)", cfg.SetupTimeout)
		}
		fmt.Fprintf(stderr, "msrpgw-load: no session could be set up with %s (%d failed: %v)%s\n", cfg.GW, rep.Setups.Failures, rep.Setups.Why, why)
		return exitFailed
	}
	if faults := rep.faults(); len(faults) > 0 {
		for _, f := range faults {
			fmt.Fprintln(stderr, "msrpgw-load: not clean:", f)
		}
		return exitFaulted
	}
	return exitClean
}

// exitHelp ends the -h text.
const exitHelp = `
Exit status:
  0  the run completed clean: every session set up and ended by an answered BYE, and every message sent,
     answered 2xx and delivered once, in order
  1  nothing or not all was measured: no gateway at -gw, no session could be set up, the run was
     interrupted, or the tool could not start
  2  bad flags or configuration
  3  the run completed but was not clean: messages lost, duplicated, reordered, unsent, unanswered or
     refused, or session setups, BYEs or MSRP connections failed (the report says which; one line per
     fault on stderr)
`

// printReport writes the summary for a human.
func printReport(w io.Writer, r *Report) {
	fmt.Fprintf(w, "%s  gw %s  mode %s  %s  sessions %d  rate %g (%s)  window %d  duration %gs  setup %s\n",
		r.Date, r.Gateway, r.Mode, r.Transport, r.Sessions, r.Rate, r.Arrival, r.Window, r.DurationS, r.SetupMode)
	s := r.Setups
	fmt.Fprintf(w, "setups: %d ok, %d failed %v, %.1f ms (%.0f/s), each p50 %.2f p99 %.2f max %.2f ms; byes %d (failed %d)\n",
		s.Count, s.Failures, s.Why, s.PhaseMs, s.PerSecond, s.Duration.P50, s.Duration.P99, s.Duration.Max, s.Byes, s.ByeFailure)
	for _, n := range slices.Sorted(maps.Keys(r.Flows)) {
		f := r.Flows[n]
		fmt.Fprintf(w, "%s: sent %d (%.0f/s, %d send errors) delivered %d (%.0f/s) lost %d duplicated %d reordered %d other %d (misrouted %d) never sent %d\n",
			n, f.Sent, f.AchievedRate, f.SendErrors, f.Delivered, f.DeliveredRate, f.Lost, f.Duplicated, f.Reordered, f.Foreign, f.Misrouted, f.NeverSent)
		fmt.Fprintf(w, "  latency p50 %.3f p90 %.3f p99 %.3f max %.3f ms; final responses %v, none %d\n",
			f.Latency.P50, f.Latency.P90, f.Latency.P99, f.Latency.Max, f.Responses, f.NoResponse)
		if wl := f.WireLatency; wl != nil {
			fmt.Fprintf(w, "  wire latency p50 %.3f p90 %.3f p99 %.3f max %.3f ms (%d of %d messages)\n",
				wl.P50, wl.P90, wl.P99, wl.Max, wl.N, f.Delivered)
		}
	}
	if c := r.Churn; c != nil {
		fmt.Fprintf(w, "churn: %d ok, %d failed %v, each p50 %.2f p99 %.2f ms; byes %d (failed %d)\n",
			c.Count, c.Failures, c.Why, c.Duration.P50, c.Duration.P99, c.Byes, c.ByeFailure)
	}
	fmt.Fprintf(w, "MSRP connections lost %d, BYEs from the gateway %d, tool CPU %.0f ms\n", r.ConnLost, r.ByesFromGateway, r.ToolCPUMs)
	if r.StealPct != nil {
		fmt.Fprintf(w, "machine: %.2f %% of its CPU time stolen by the host during the load\n", *r.StealPct)
	}
	if p := r.GatewayProc; p != nil {
		fmt.Fprintf(w, "gateway pid %d: CPU %.0f ms for %d messages = %.1f µs/msg; RSS %d -> %d -> %d KiB (max %d); fds %d -> %d -> %d\n",
			p.PID, p.CPUMs, p.Messages, p.CPUUsPerMsg, p.RSSKiBStart, p.RSSKiBPeak, p.RSSKiBEnd, p.RSSKiBMax, p.FDsStart, p.FDsLoaded, p.FDsEnd)
		if p.GoroutinesStart > 0 || p.GoroutinesLoaded > 0 || p.GoroutinesEnd > 0 {
			fmt.Fprintf(w, "  goroutines %d -> %d -> %d\n", p.GoroutinesStart, p.GoroutinesLoaded, p.GoroutinesEnd)
		}
		if p.RunQueueUsPerMsg != nil {
			fmt.Fprintf(w, "  per message: %.1f µs waiting for a CPU, put on a CPU %.2f times\n", *p.RunQueueUsPerMsg, *p.SlicesPerMsg)
		}
	}
}

// Command msrpgw is the SIP MESSAGE ⇄ MSRP gateway daemon.
//
//	msrpgw [-config FILE]                run the gateway (embedded default config without -config)
//	msrpgw check [-config FILE]          validate a config and print what it would listen on
//	msrpgw sessions list|show|end ...    talk to a running gateway's admin API
//	msrpgw gen-cert -cert FILE -key FILE  write a self-signed pair for tests and first runs
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/gateway"
	"github.com/msrpgw/msrpgw/internal/tune"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return check(args[1:], stdout, stderr)
		case "sessions":
			return sessions(args[1:], stdout, stderr)
		case "gen-cert":
			return genCert(args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			usage(stdout)
			return 0
		}
	}
	fs := flag.NewFlagSet("msrpgw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "msrpgw: unexpected argument %q (a config file is given with -config FILE)\n", fs.Arg(0))
		usage(stderr)
		return 2
	}
	// From here on SIGINT and SIGTERM stop the daemon cleanly, while it starts too: without a handler Go's
	// default kills the process in the middle of start-up (status 143, nothing logged, listeners torn down by
	// the kernel rather than closed).
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	// SIGHUP, Go's default for which is to kill the process (no drain, no BYEs, nothing logged), is only
	// logged: a closed terminal or a `systemctl reload` must not drop every session. The config is read once.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// A log reader that went away (a pipe to jq ended by the same Ctrl-C, a restarted log shipper) would kill
	// the daemon by SIGPIPE at its next log line, without a drain: the write fails (EPIPE) instead.
	signal.Ignore(syscall.SIGPIPE)
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw:", err)
		return 1
	}
	return serve(cfg, stderr, sig, hup)
}

// adminReadTimeout bounds reading one admin API request, body included.
const adminReadTimeout = 10 * time.Second

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  msrpgw [-config FILE]              run the gateway (the embedded default config without -config)
  msrpgw check [-config FILE]        validate a config and print what it would listen on
  msrpgw sessions list|show KEY|end KEY [-admin URL] [-token T] [-json] [-config FILE]
  msrpgw gen-cert [-host 127.0.0.1,localhost] [-days 365] -cert FILE -key FILE
`)
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("msrpgw check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "msrpgw check: unexpected argument %q (a config file is given with -config FILE)\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw check:", err)
		return 1
	}
	if _, err := gateway.NewTemplateRouter(cfg); err != nil {
		fmt.Fprintln(stderr, "msrpgw check:", err)
		return 1
	}
	// What start would fail on besides the config itself: the files it names, and two TCP listeners on one
	// address.
	if err := checkStartable(cfg); err != nil {
		where := *path
		if where == "" {
			where = "the embedded default"
		}
		fmt.Fprintf(stderr, "msrpgw check: config %s would not start: %v\n", where, err)
		return 1
	}
	fmt.Fprint(stdout, cfg.Describe())
	fmt.Fprintln(stdout, "config OK")
	return 0
}

func sessions(args []string, stdout, stderr io.Writer) int {
	// The admin URL defaults to the config's admin.listen; -config picks another config file.
	cfgPath := ""
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "-config" || args[i] == "--config" {
			if i+1 == len(args) {
				fmt.Fprintln(stderr, "msrpgw sessions: -config needs a FILE")
				return 2
			}
			cfgPath = args[i+1]
			i++
			continue
		}
		if v, ok := strings.CutPrefix(args[i], "-config="); ok {
			cfgPath = v
			continue
		}
		if v, ok := strings.CutPrefix(args[i], "--config="); ok {
			cfgPath = v
			continue
		}
		rest = append(rest, args[i])
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "msrpgw sessions:", err)
		return 1
	}
	adminURL := "" // admin.listen empty: the API is off, and there is no default to dial
	if cfg.Admin.Listen != "" {
		adminURL = "http://" + cfg.Admin.Listen
	}
	return admin.RunSessions(rest, adminURL, cfg.Admin.Token, stdout, stderr)
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the gateway until SIGINT/SIGTERM (read from sig), then drains and exits 0. A signal that comes
// before the gateway serves stops start-up where it has got to: what it opened is closed, and serve exits 0
// without serving.
func serve(cfg *config.Config, stderr io.Writer, sig, hup <-chan os.Signal) int {
	log := newLogger(cfg.Log, stderr)
	served := make(chan struct{})
	defer close(served)
	go func() {
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP ignored: the config is read only at start; restart to apply a new one (SIGTERM drains first)")
			case <-served:
				return
			}
		}
	}()
	start := startup{sig: sig, log: log}
	gateway.ConfigureSIPStack(cfg)
	// sipgo logs some transport events through its process-wide default logger; without this they come out
	// in Go's default text format, breaking log.format json (found by TestJSONLogs).
	sip.SetDefaultLogger(log.With("component", "sip"))
	// The same for whatever a library prints through the standard log package.
	slog.SetDefault(log)
	tuneCtx, stopTuning := context.WithCancel(context.Background())
	defer stopTuning()
	tune.Start(tuneCtx, log)
	if w := cfg.ContactWarning(); w != "" {
		log.Warn("sip.contact names a port the gateway does not listen on", "why", w)
	}
	if start.interrupted(stepConfig) {
		return start.stopped()
	}

	var gw *gateway.Gateway
	metrics := admin.NewMetrics(func() admin.Stats { return adminView{gw}.Stats() })
	hooks := make([]admin.Webhook, 0, len(cfg.Events.Webhooks))
	for _, h := range cfg.Events.Webhooks {
		hooks = append(hooks, admin.Webhook{URL: h.URL, Events: h.Events})
	}
	dispatcher := admin.NewDispatcher(hooks, metrics, admin.DispatcherOptions{Logger: log.With("component", "webhook")})
	// abandon releases what start-up has opened when a signal stops it. Nothing was published yet, so the
	// dispatcher has nothing to deliver.
	abandon := func() {
		gw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		dispatcher.Close(ctx)
	}
	gw, err := gateway.New(cfg, gateway.Options{Logger: log, Events: event.Sinks{metrics, dispatcher}})
	if err != nil {
		log.Error("cannot build the gateway", "err", err)
		return 1
	}
	if start.interrupted(stepGateway) {
		abandon()
		return start.stopped()
	}
	if err := gw.Start(); err != nil {
		log.Error("cannot start the gateway", "err", err)
		return 1
	}
	if start.interrupted(stepListeners) {
		abandon()
		return start.stopped()
	}

	adminSrv := &http.Server{
		Handler: admin.NewHandler(adminView{gw}, metrics, admin.Options{Token: cfg.Admin.Token, Pprof: cfg.Admin.Pprof, Logger: log.With("component", "admin")}),
		// A client gets 5 s for its request's headers and 10 s for the whole request, so a slow or stalled body
		// cannot hold a connection (or the shutdown) for long; no write timeout: a CPU profile takes its seconds.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       adminReadTimeout,
		IdleTimeout:       2 * time.Minute,
		// net/http's own errors (accept failures, a handler's panic) in the configured log format.
		ErrorLog: slog.NewLogLogger(log.With("component", "admin").Handler(), slog.LevelWarn),
	}
	if cfg.Admin.Listen == "" {
		// Off, as `check` says: net.Listen("") would open it on every interface, on a random port.
		log.Info("admin API off (admin.listen is empty)")
	} else {
		ln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			log.Error("cannot open the admin listener", "key", "admin.listen", "addr", cfg.Admin.Listen, "err", err)
			abandon()
			return 1
		}
		if start.interrupted(stepAdmin) {
			ln.Close()
			abandon()
			return start.stopped()
		}
		go func() {
			if err := adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server stopped", "err", err)
			}
		}()
		log.Info("admin API listening", "addr", ln.Addr().String())
	}

	s := <-sig
	log.Info("shutting down", "signal", s.String(), "shutdown_timeout", cfg.Gateway.ShutdownTimeout)
	go exitOnSecondSignal(sig, log, "exiting without finishing the drain")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Gateway.ShutdownTimeout+15*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	adminSrv.Shutdown(ctx)
	dispatcher.Close(ctx)
	log.Info("stopped")
	return 0
}

// exitOnSecondSignal exits 1 when one more signal comes: the operator does not want to wait for what the
// first one started, and what is still in flight is not reported.
func exitOnSecondSignal(sig <-chan os.Signal, log *slog.Logger, what string) {
	s := <-sig
	log.Warn("second signal: "+what, "signal", s.String())
	os.Exit(1)
}

// The steps of start-up after which a signal is looked for, as logged in "stopping during start-up".
const (
	stepConfig    = "config"    // config loaded, nothing opened
	stepGateway   = "gateway"   // gateway built, not listening
	stepListeners = "listeners" // SIP and MSRP listening, admin API not yet
	stepAdmin     = "admin"     // admin listener open, not yet served
)

// holdStartupEnv names the step at which a binary built with -tags msrpgw_testhooks holds start-up until a
// signal comes (hold_testhooks.go): the window between two steps is a millisecond or so, too small for a test
// to hit at will. The daemon itself never reads it.
const holdStartupEnv = "MSRPGW_TEST_HOLD_STARTUP"

// startup notices a signal that comes before the daemon serves. Each step of start-up is short and bounded
// (files, binds, name lookups), so a signal is acted on when the step in progress returns.
type startup struct {
	sig <-chan os.Signal
	log *slog.Logger
}

// interrupted reports whether a stop signal has come by the end of step; if so it logs it, and a second
// signal from then on exits 1 at once (as during a drain).
func (s startup) interrupted(step string) bool {
	var got os.Signal
	select {
	case got = <-s.sig:
	default:
		got = holdStartup(step, s.log, s.sig) // nil unless a test build holds start-up at step
	}
	if got == nil {
		return false
	}
	s.log.Info("stopping during start-up", "signal", got.String(), "step", step)
	go exitOnSecondSignal(s.sig, s.log, "exiting without finishing the stop")
	return true
}

// stopped logs the end of a start-up that a signal stopped, and returns the exit status: 0, as for a drain.
func (s startup) stopped() int {
	s.log.Info("stopped during start-up")
	return 0
}

// checkStartable finds what would stop a valid config from starting: a users file, certificate or CA that
// cannot be loaded. Each problem names its key, with its line and column (config.Validate has refused
// listeners that cannot open side by side already).
func checkStartable(cfg *config.Config) error {
	var errs []error
	if gw, err := gateway.New(cfg, gateway.Options{}); err != nil {
		errs = append(errs, cfg.Place(err))
	} else {
		gw.Close()
	}
	for _, tc := range []struct{ certKey, cert, keyKey, key string }{
		{"sip.tls.cert", cfg.SIP.TLS.Cert, "sip.tls.key", cfg.SIP.TLS.Key},
		{"msrp.tls.cert", cfg.MSRP.TLS.Cert, "msrp.tls.key", cfg.MSRP.TLS.Key},
	} {
		if tc.cert == "" {
			continue
		}
		certPEM, err := os.ReadFile(tc.cert)
		if err != nil {
			errs = append(errs, cfg.ErrorAt(tc.certKey, err))
			continue
		}
		keyPEM, err := os.ReadFile(tc.key)
		if err != nil {
			errs = append(errs, cfg.ErrorAt(tc.keyKey, err))
			continue
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			errs = append(errs, cfg.ErrorAt(tc.certKey, fmt.Errorf("%s with %s: %w", tc.cert, tc.key, err)))
		}
	}
	if ca := cfg.SIP.TLS.ClientCA; ca != "" {
		pem, err := os.ReadFile(ca)
		switch {
		case err != nil:
			errs = append(errs, cfg.ErrorAt("sip.tls.client_ca", err))
		case !x509.NewCertPool().AppendCertsFromPEM(pem):
			// Start refuses a file without a certificate in it, not only one it cannot read.
			errs = append(errs, cfg.ErrorAt("sip.tls.client_ca", fmt.Errorf("%s has no PEM certificate in it", ca)))
		}
	}
	return errors.Join(errs...)
}

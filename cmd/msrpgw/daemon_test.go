package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file runs the real daemon: TestMain builds it once, startDaemon runs it as a process on a temporary
// config whose listeners are all 127.0.0.1:0, and learns the ports it got from its JSON log lines.

var daemonBin string // the msrpgw binary TestMain built

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "msrpgw-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	daemonBin = filepath.Join(dir, "msrpgw")
	build := exec.Command("go", "build", "-o", daemonBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build of the daemon failed:", err)
		return 1
	}
	return m.Run()
}

const waitFor = testpeer.WaitFor

// baseConfig is the YAML every daemon test starts from: loopback, ephemeral ports, JSON logs, short deadlines.
// %s is replaced by the test's extra top-level keys (merged by hand: keep them out of these sections).
const baseConfig = `sip:
  listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]
  contact: sip:127.0.0.1:0
msrp:
  listen: msrp://127.0.0.1:0;tcp
gateway:
  setup_timeout: %s
  shutdown_timeout: %s
admin:
  listen: 127.0.0.1:0
  token: %q
log:
  level: debug
  format: json
%s`

// daemonOpts are what a test changes in baseConfig.
type daemonOpts struct {
	setupTimeout    string // default 3s
	shutdownTimeout string // default 2s
	token           string
	extra           string // more YAML at top level (e.g. an events: section)
}

// daemon is one running msrpgw process.
type daemon struct {
	t       testing.TB
	cmd     *exec.Cmd
	cfgPath string
	token   string
	sipUDP  string // host:port
	admin   string // http://host:port
	exited  chan struct{}
	exitErr error

	mu    sync.Mutex
	lines []string // stderr, one log line each
}

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "msrpgw.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startDaemon(t testing.TB, o daemonOpts) *daemon {
	t.Helper()
	if o.setupTimeout == "" {
		o.setupTimeout = "3s"
	}
	if o.shutdownTimeout == "" {
		o.shutdownTimeout = "2s"
	}
	path := writeConfig(t, fmt.Sprintf(baseConfig, o.setupTimeout, o.shutdownTimeout, o.token, o.extra))
	d := runDaemon(t, "-config", path)
	d.cfgPath, d.token = path, o.token
	started := d.waitJSON(func(m map[string]any) bool { return m["msg"] == "gateway started" })
	sips, _ := started["sip"].([]any)
	for _, s := range sips {
		if addr, ok := strings.CutPrefix(fmt.Sprint(s), "udp:"); ok {
			d.sipUDP = addr
		}
	}
	if d.sipUDP == "" {
		t.Fatalf("no udp listener in %v", started)
	}
	listening := d.waitJSON(func(m map[string]any) bool { return m["msg"] == "admin API listening" })
	d.admin = "http://" + fmt.Sprint(listening["addr"])
	return d
}

// runDaemon starts the binary with args and collects its stderr; the test's cleanup kills it if it still runs.
func runDaemon(t testing.TB, args ...string) *daemon {
	t.Helper()
	return runBinary(t, daemonBin, nil, args...)
}

// hookedBin is the daemon built with -tags msrpgw_testhooks (hold_testhooks.go), for the tests that hold
// start-up at a step; built on first use.
var hookedBin struct {
	once sync.Once
	path string
	err  error
}

func hookedDaemonBin(t testing.TB) string {
	t.Helper()
	hookedBin.once.Do(func() {
		path := filepath.Join(filepath.Dir(daemonBin), "msrpgw-testhooks")
		build := exec.Command("go", "build", "-tags", "msrpgw_testhooks", "-o", path, ".")
		if out, err := build.CombinedOutput(); err != nil {
			hookedBin.err = fmt.Errorf("go build -tags msrpgw_testhooks: %v\n%s", err, out)
			return
		}
		hookedBin.path = path
	})
	if hookedBin.err != nil {
		t.Fatal(hookedBin.err)
	}
	return hookedBin.path
}

// runBinary is runDaemon for another build of the daemon (bin), with env added to the test's environment.
func runBinary(t testing.TB, bin string, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	if env != nil {
		d.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			d.mu.Unlock()
			if testing.Verbose() {
				fmt.Fprintln(os.Stderr, "msrpgw:", sc.Text())
			}
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it all first
		d.exitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Kill()
			<-d.exited
		}
	})
	return d
}

// logLines returns what the daemon has logged so far.
func (d *daemon) logLines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// waitLine waits for a log line that match accepts, failing the test after waitFor or when the daemon exits.
func (d *daemon) waitLine(match func(string) bool) string {
	d.t.Helper()
	deadline := time.Now().Add(waitFor)
	for seen := 0; ; {
		lines := d.logLines()
		for ; seen < len(lines); seen++ {
			if match(lines[seen]) {
				return lines[seen]
			}
		}
		select {
		case <-d.exited:
			d.t.Fatalf("the daemon exited (%v) before logging the line awaited; it logged:\n%s", d.exitErr, strings.Join(d.logLines(), "\n"))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the awaited log line did not come within %s; the daemon logged:\n%s", waitFor, strings.Join(lines, "\n"))
		}
	}
}

// waitJSON waits for a JSON log line that match accepts and returns it decoded.
func (d *daemon) waitJSON(match func(map[string]any) bool) map[string]any {
	d.t.Helper()
	var got map[string]any
	d.waitLine(func(l string) bool {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || !match(m) {
			return false
		}
		got = m
		return true
	})
	return got
}

// signal sends sig to the daemon.
func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits for the daemon to exit and returns its exit code.
func (d *daemon) waitExit() int {
	d.t.Helper()
	select {
	case <-d.exited:
	case <-time.After(waitFor + 20*time.Second): // shutdown_timeout plus the daemon's own margin
		d.t.Fatal("the daemon did not exit")
	}
	return d.cmd.ProcessState.ExitCode()
}

// stop sends SIGTERM and checks the daemon exits 0.
func (d *daemon) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	if code := d.waitExit(); code != 0 {
		d.t.Fatalf("exit code %d after SIGTERM, want 0; log:\n%s", code, strings.Join(d.logLines(), "\n"))
	}
}

// do makes an admin API request (with the token, if the daemon has one) and returns the status and body.
func (d *daemon) do(method, path, body string) (int, []byte) {
	d.t.Helper()
	code, b, err := d.tryDo(method, path, body, d.token)
	if err != nil {
		d.t.Fatal(err)
	}
	return code, b
}

func (d *daemon) tryDo(method, path, body, token string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.admin+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// sessions lists the sessions through GET /api/sessions.
func (d *daemon) sessions() []admin.Session {
	d.t.Helper()
	code, body := d.do("GET", "/api/sessions", "")
	if code != 200 {
		d.t.Fatalf("GET /api/sessions = %d %s", code, body)
	}
	var list []admin.Session
	if err := json.Unmarshal(body, &list); err != nil {
		d.t.Fatalf("GET /api/sessions: %v in %s", err, body)
	}
	return list
}

// waitSessions polls /api/sessions until ok accepts the list.
func (d *daemon) waitSessions(what string, ok func([]admin.Session) bool) []admin.Session {
	d.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		list := d.sessions()
		if ok(list) {
			return list
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("sessions never became %s: %+v", what, list)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sessionPath(key string) string { return "/api/sessions/" + url.PathEscape(key) }

// mi posts a JSON-RPC request to /mi and returns the decoded reply.
func (d *daemon) mi(req string) miReply {
	d.t.Helper()
	code, body := d.do("POST", "/mi", req)
	if code != 200 {
		d.t.Fatalf("POST /mi %s = %d %s", req, code, body)
	}
	var r miReply
	if err := json.Unmarshal(body, &r); err != nil {
		d.t.Fatalf("POST /mi: %v in %s", err, body)
	}
	if r.JSONRPC != "2.0" {
		d.t.Fatalf("POST /mi: jsonrpc %q in %s", r.JSONRPC, body)
	}
	return r
}

type miReply struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ID json.RawMessage `json:"id"`
}

// metrics scrapes /metrics.
func (d *daemon) metrics() string {
	d.t.Helper()
	code, body := d.do("GET", "/metrics", "")
	if code != 200 {
		d.t.Fatalf("GET /metrics = %d", code)
	}
	return string(body)
}

// cli runs `msrpgw ARGS...` and returns its exit code, stdout and stderr.
func cli(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, daemonBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("msrpgw %v: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// metricValue finds the sample of name whose labels are exactly labels in a Prometheus text exposition.
func metricValue(text, name string, labels map[string]string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, lset, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := parseLabels(strings.TrimSuffix(lset, "}"))
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if gv, ok := got[k]; !ok || gv != v {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		return f, err == nil
	}
	return 0, false
}

// parseLabels reads `a="x",b="y"` (with \" \\ \n escapes in values).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(rest[i])
		}
		out[k] = v.String()
		s = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return out
}

// freePort reports a TCP port on 127.0.0.1 that nothing listens on right now (for a dead webhook URL).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// checkShutdownByes checks, after the daemon has exited, that every session got BYE (SPEC §3.3).
// Shutdown waits for its BYEs before closing the transports, so a missing BYE is a failure.
func (d *daemon) checkShutdownByes(sessions ...*testpeer.ClientSession) {
	d.t.Helper()
	select {
	case <-d.exited:
	default:
		d.t.Fatal("checkShutdownByes before the daemon exited")
	}
	var missing []string
	for _, cs := range sessions {
		select {
		case <-cs.ByeReceived():
		case <-time.After(waitFor):
			missing = append(missing, cs.CallID)
		}
	}
	if len(missing) == 0 {
		return
	}
	d.t.Errorf("no BYE at shutdown for Call-IDs %v", missing)
}

// A log reader that went away (a pipe to jq stopped by the same Ctrl-C, a restarted log shipper) does not kill
// the daemon by SIGPIPE at its next log line: SIGHUP is still only logged, SIGTERM still drains and exits 0.
func TestClosedLogPipeDoesNotKill(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			path := writeConfig(t, fmt.Sprintf(baseConfig, "3s", "2s", "", ""))
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(daemonBin, "-config", path)
			cmd.Stderr, cmd.Stdout = w, w
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				select {
				case <-exited:
				default:
					cmd.Process.Kill()
					<-exited
				}
			})
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "admin API listening") {
					break
				}
			}
			r.Close() // the reader of the logs goes away
			select {
			case <-exited:
				t.Fatalf("the daemon exited (%v) before any signal", cmd.ProcessState)
			case <-time.After(300 * time.Millisecond):
			}

			cmd.Process.Signal(sig)
			if sig == syscall.SIGHUP {
				select {
				case <-exited:
					t.Fatalf("SIGHUP with the log pipe closed: the daemon exited (%v), want it still running", cmd.ProcessState)
				case <-time.After(time.Second):
				}
				cmd.Process.Signal(syscall.SIGTERM)
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatal("the daemon did not exit after SIGTERM")
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("SIGTERM with the log pipe closed: the daemon died of %v instead of draining and exiting 0", ws.Signal())
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit %d after SIGTERM, want 0", code)
			}
		})
	}
}

// A start-up failure of the admin listener names its key, as the SIP and MSRP listeners' do.
func TestAdminListenInUseNamesKey(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := strings.Replace(fmt.Sprintf(baseConfig, "3s", "2s", "", ""), "listen: 127.0.0.1:0\n  token",
		"listen: "+ln.Addr().String()+"\n  token", 1)
	d := runDaemon(t, "-config", writeConfig(t, cfg))
	code := d.waitExit()
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var failure string
	for _, l := range d.logLines() {
		if strings.Contains(l, "address already in use") {
			failure = l
		}
	}
	if !strings.Contains(failure, "admin.listen") {
		t.Errorf("the failure line does not name the key admin.listen:\n%s", failure)
	}
}

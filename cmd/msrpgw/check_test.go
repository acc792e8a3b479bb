package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

func TestCheckCommand(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		code       int
		want       []string // in stdout (exit 0) or stderr
	}{
		{"valid", "sip:\n  listen: [udp:127.0.0.1:5070, tcp:127.0.0.1:5070]\nadmin:\n  listen: 127.0.0.1:8181\n", 0,
			[]string{"SIP listen:          udp:127.0.0.1:5070, tcp:127.0.0.1:5070", "MSRP listen:", "Admin listen:        http://127.0.0.1:8181", "config OK"}},
		{"unknown template variable", "gateway:\n  message:\n    key: \"$tu:$nope\"\n", 1,
			[]string{"gateway.message.key", "line 3, column", "$nope"}},
		{"session_timeout below message_timeout", "gateway:\n  message_timeout: 1h\n  session_timeout: 30m\n", 1,
			[]string{"gateway.session_timeout", "line 3", "lower than gateway.message_timeout"}},
		{"YAML syntax", "sip:\n  listen: [udp:127.0.0.1:5060\n", 1, []string{"line"}},
		// What start would fail on: files it cannot load, two TCP listeners on one address.
		{"users file missing", "sip:\n  auth: {realm: gw, users_file: /nonexistent/msrpgw-users}\n", 1,
			[]string{"sip.auth.users_file", "/nonexistent/msrpgw-users"}},
		{"certificate missing", "msrp:\n  listen: msrps://127.0.0.1:2856;tcp\n  tls: {cert: /nonexistent/c.pem, key: /nonexistent/k.pem}\n", 1,
			[]string{"msrp.tls", "/nonexistent/c.pem"}},
		{"MSRP and admin on one address", "msrp:\n  listen: msrp://127.0.0.1:8181;tcp\nadmin:\n  listen: 127.0.0.1:8181\n", 1,
			[]string{"key admin.listen (line 4, column 11): 127.0.0.1:8181 takes TCP port 8181 on 127.0.0.1, as msrp.listen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			code, out, stderr := cli(t, "check", "-config", path)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, stderr)
			}
			text := out
			if tc.code != 0 {
				text = stderr
				if strings.Contains(out, "config OK") {
					t.Errorf("a refused config printed config OK: %s", out)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
			if tc.code != 0 && !strings.Contains(stderr, path) {
				t.Errorf("the error does not name the file %s: %s", path, stderr)
			}
		})
	}
	// And the daemon itself refuses to start on a refused config.
	path := writeConfig(t, "gateway:\n  message_timeout: 1h\n  session_timeout: 30m\n")
	d := runDaemon(t, "-config", path)
	if code := d.waitExit(); code != 1 {
		t.Errorf("daemon on a refused config: exit %d, want 1", code)
	}
}

// TestCheckStartProblemsPlaced: what would stop start-up (files that cannot be loaded) is reported as the
// config's own problems are (docs/OPERATIONS.md): every problem, one a line, each naming its key, line and
// column.
func TestCheckStartProblemsPlaced(t *testing.T) {
	path := writeConfig(t, `sip:
  auth: {realm: gw, users_file: /nonexistent/msrpgw-users}
msrp:
  listen: msrps://127.0.0.1:2856;tcp
  tls: {cert: /nonexistent/c.pem, key: /nonexistent/k.pem}
`)
	code, out, stderr := cli(t, "check", "-config", path)
	if code != 1 || strings.Contains(out, "config OK") {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	want := []string{
		"msrpgw check: config " + path + " would not start: key sip.auth.users_file (line 2, column 33): open /nonexistent/msrpgw-users: ",
		"key msrp.tls.cert (line 5, column 15): open /nonexistent/c.pem: ",
	}
	if len(lines) != len(want) {
		t.Fatalf("check printed %d lines, want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i+1, lines[i], w)
		}
	}
}

// A client_ca file that holds no PEM certificate stops the daemon at start; check must refuse it too, not
// only a file that cannot be read.
func TestCheckRefusesClientCAWithoutCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key"), filepath.Join(dir, "ca.pem")
	if code, _, stderr := cli(t, "gen-cert", "-cert", certFile, "-key", keyFile); code != 0 {
		t.Fatalf("gen-cert: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, fmt.Sprintf(`sip:
  listen: [udp:127.0.0.1:0, "tls:127.0.0.1:0"]
  tls: {cert: %q, key: %q, client_ca: %q}
msrp:
  listen: msrp://127.0.0.1:0;tcp
admin:
  listen: 127.0.0.1:0
`, certFile, keyFile, caFile))
	code, out, stderr := cli(t, "check", "-config", path)
	if code != 1 || strings.Contains(out, "config OK") || !strings.Contains(stderr, "sip.tls.client_ca") {
		t.Errorf("check: exit %d, want 1 naming sip.tls.client_ca\nstdout: %s\nstderr: %s", code, out, stderr)
	}
	d := runDaemon(t, "-config", path)
	if code := d.waitExit(); code != 1 {
		t.Errorf("daemon: exit %d, want 1", code)
	}
}

// portsFree reports whether the default config's listeners could be opened now.
func portsFree() bool {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for _, l := range []struct{ network, addr string }{{"udp", "127.0.0.1:5060"}, {"tcp", "127.0.0.1:5060"}, {"tcp", "127.0.0.1:2855"}, {"tcp", "127.0.0.1:8080"}} {
		if l.network == "udp" {
			pc, err := net.ListenPacket("udp", l.addr)
			if err != nil {
				return false
			}
			closers = append(closers, pc.Close)
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return false
		}
		closers = append(closers, ln.Close)
	}
	return true
}

// freeSIPPort finds a port free for both UDP and TCP on 127.0.0.1.
func freeSIPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

// TestStartWithoutConfig: `msrpgw` with no -config runs on the embedded default (text logs, the default ports).
// When those ports are taken, it runs on a copy of config/default.yaml with only the ports changed.
func TestStartWithoutConfig(t *testing.T) {
	sipAddr, adminAddr := "127.0.0.1:5060", "127.0.0.1:8080"
	var d *daemon
	if portsFree() {
		d = runDaemon(t)
		if !d.waitStartedText() {
			d = nil // lost a race for a default port: fall back below
		}
	}
	if d == nil {
		def, err := os.ReadFile(filepath.Join("..", "..", "config", "default.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		sipPort, msrpPort, adminPort := freeSIPPort(t), freePort(t), freePort(t)
		cfg := string(def)
		for old, new := range map[string]string{
			"127.0.0.1:5060": fmt.Sprintf("127.0.0.1:%d", sipPort),
			"127.0.0.1:2855": fmt.Sprintf("127.0.0.1:%d", msrpPort),
			"127.0.0.1:8080": fmt.Sprintf("127.0.0.1:%d", adminPort),
		} {
			if !strings.Contains(cfg, old) {
				t.Fatalf("config/default.yaml has no %s any more", old)
			}
			cfg = strings.ReplaceAll(cfg, old, new)
		}
		sipAddr, adminAddr = fmt.Sprintf("127.0.0.1:%d", sipPort), fmt.Sprintf("127.0.0.1:%d", adminPort)
		d = runDaemon(t, "-config", writeConfig(t, cfg))
		if !d.waitStartedText() {
			t.Fatalf("the daemon on the default config with free ports did not start:\n%s", strings.Join(d.logLines(), "\n"))
		}
	}
	d.admin = "http://" + adminAddr
	d.sipUDP = sipAddr
	line := d.waitLine(func(l string) bool { return strings.Contains(l, `msg="admin API listening"`) })
	if !strings.Contains(line, "addr="+adminAddr) || !strings.HasPrefix(line, "time=") {
		t.Errorf("text log line %q: want logfmt with addr=%s", line, adminAddr)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		if code, _ := d.do("GET", path, ""); code != want {
			t.Errorf("GET %s = %d, want %d", path, code, want)
		}
	}
	// It is a working gateway, not just an admin server.
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	upSession(t, d, phone, client)
	d.stop()
}

// waitStartedText waits until a text-logging daemon says its admin API listens; false when it exited first
// because an address was in use.
func (d *daemon) waitStartedText() bool {
	d.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, l := range d.logLines() {
			if strings.Contains(l, `msg="admin API listening"`) {
				return true
			}
		}
		select {
		case <-d.exited:
			all := strings.Join(d.logLines(), "\n")
			if strings.Contains(all, "address already in use") {
				return false
			}
			d.t.Fatalf("the daemon exited (%v):\n%s", d.exitErr, all)
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.t.Fatalf("the daemon did not start within %s:\n%s", waitFor, strings.Join(d.logLines(), "\n"))
	return false
}

// A word that is not a flag is a mistake (e.g. the config file without -config), not a reason to start on the
// embedded default: usage and exit 2, for the daemon and for check.
func TestStrayArgumentRefused(t *testing.T) {
	for _, args := range [][]string{{"/etc/msrpgw.yaml"}, {"check", "extra"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, daemonBin, args...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "unexpected argument") {
			t.Errorf("msrpgw %v: %v\n%s\nwant exit 2 and 'unexpected argument'", args, err, out)
		}
	}
}

// admin.listen empty means no admin API (as check says), not one on every interface and a random port.
func TestAdminListenEmptyIsOff(t *testing.T) {
	cfg := fmt.Sprintf(baseConfig, "3s", "2s", "", "")
	if !strings.Contains(cfg, "listen: 127.0.0.1:0\n  token") {
		t.Fatal("baseConfig's admin section changed")
	}
	d := runDaemon(t, "-config", writeConfig(t, strings.Replace(cfg, "listen: 127.0.0.1:0\n  token", "listen: \"\"\n  token", 1)))
	d.waitJSON(func(m map[string]any) bool { return m["msg"] == "admin API off (admin.listen is empty)" })
	for _, l := range d.logLines() {
		if strings.Contains(l, "admin API listening") {
			t.Fatalf("an admin listener was opened: %s", l)
		}
	}
	d.stop()
}

// sip.contact is the operator's: a host in it (a name, a NAT address) is advertised as written, also when the
// URI has no port, which is then the port the gateway listens on. Only port-0 listeners (tests) replace it.
func TestContactHostKept(t *testing.T) {
	port := freeSIPPort(t)
	d := runDaemon(t, "-config", writeConfig(t, fmt.Sprintf(`sip:
  listen: [udp:127.0.0.1:%d, tcp:127.0.0.1:%d]
  contact: sip:gw.example.net
msrp:
  listen: msrp://127.0.0.1:0;tcp
admin:
  listen: 127.0.0.1:0
log:
  format: json
`, port, port)))
	started := d.waitJSON(func(m map[string]any) bool { return m["msg"] == "gateway started" })
	if want := fmt.Sprintf("sip:gw.example.net:%d", port); started["contact"] != want {
		t.Errorf("advertised contact %v, want %s", started["contact"], want)
	}
	d.stop()
}

// TestCheckOutputAsDocumented: the two `msrpgw check` outputs docs/OPERATIONS.md shows, a valid config's and a
// refused one's, are what check prints for such configs ("..." in a doc line stands for any text).
func TestCheckOutputAsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(first string) []string {
		t.Helper()
		var lines []string
		in := false
		for line := range strings.SplitSeq(string(doc), "\n") {
			switch {
			case strings.HasPrefix(line, "```"):
				if in && strings.HasPrefix(lines[0], first) {
					return lines
				}
				in, lines = !in, nil
			case in:
				lines = append(lines, line)
			}
		}
		t.Fatalf("docs/OPERATIONS.md has no code block starting with %q", first)
		return nil
	}
	same := func(name, got string, want []string, file string) {
		t.Helper()
		gotLines := strings.Split(strings.TrimRight(got, "\n"), "\n")
		if len(gotLines) != len(want) {
			t.Errorf("%s: check printed %d lines, the doc shows %d:\n%s", name, len(gotLines), len(want), got)
			return
		}
		for i, w := range want {
			w = strings.ReplaceAll(w, "/etc/msrpgw.yaml", file)
			if before, after, cut := strings.Cut(w, "..."); cut {
				if !strings.HasPrefix(gotLines[i], before) || !strings.HasSuffix(gotLines[i], after) ||
					len(gotLines[i]) < len(before)+len(after) {
					t.Errorf("%s line %d:\n got %s\nwant %s", name, i+1, gotLines[i], w)
				}
			} else if gotLines[i] != w {
				t.Errorf("%s line %d:\n got %s\nwant %s", name, i+1, gotLines[i], w)
			}
		}
	}

	ok := writeConfig(t, "sip:\n  listen: [udp:127.0.0.1:5070, tcp:127.0.0.1:5070]\n  contact: sip:127.0.0.1:5070\n"+
		"admin:\n  listen: 127.0.0.1:8181\n")
	code, out, stderr := cli(t, "check", "-config", ok)
	if code != 0 {
		t.Fatalf("valid config: exit %d: %s", code, stderr)
	}
	same("valid config", out, block("SIP listen:"), ok)

	bad := writeConfig(t, "gateway:\n  message_timeout: 1h\n  session_timeout: 30m\n  message:\n    key: \"$nope\"\n")
	code, _, stderr = cli(t, "check", "-config", bad)
	if code != 1 {
		t.Fatalf("refused config: exit %d, want 1", code)
	}
	same("refused config", stderr, block("msrpgw check: config"), bad)
}

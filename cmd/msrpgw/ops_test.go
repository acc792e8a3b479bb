package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

func TestMetricsAfterKnownSequence(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	const toMSRP, toSIP = 4, 3

	key, cs := upSession(t, d, phone, client) // message 1 to MSRP
	for i := 1; i < toMSRP; i++ {
		if res := phone.Send(d.sipUDP, client.URI, "text/plain", "more"); res.StatusCode != 200 {
			t.Fatalf("MESSAGE %d answered %d", i, res.StatusCode)
		}
		cs.Recv()
	}
	for i := 0; i < toSIP; i++ {
		if r := cs.Send("text/plain", "back"); r.StatusCode != 200 {
			t.Fatalf("SEND %d = %+v", i, r)
		}
		phone.Recv()
	}

	// One setup failure: the client answers the gateway's INVITE 486.
	phone2, busy := testpeer.NewPhone(t, "carol"), testpeer.NewClient(t, "erin")
	busy.SetAnswer(486, "")
	if res := phone2.Send(d.sipUDP, busy.URI, "text/plain", "anyone?"); res.StatusCode != 486 {
		t.Fatalf("MESSAGE to a busy client answered %d, want 486 (wait mode)", res.StatusCode)
	}
	if n := phone2.Recv(); !strings.Contains(string(n.Body()), "486 Busy Here") {
		t.Fatalf("setup-failed notification %q", n.Body())
	}

	d.waitSessions("one up", func(l []admin.Session) bool { return len(l) == 1 && l[0].Key == key && l[0].State == admin.StateUp })
	m := d.metrics()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"msrpgw_messages_total", map[string]string{"direction": "to_msrp", "outcome": "delivered", "reason": ""}, toMSRP},
		{"msrpgw_messages_total", map[string]string{"direction": "to_sip", "outcome": "delivered", "reason": ""}, toSIP},
		{"msrpgw_messages_total", map[string]string{"direction": "to_msrp", "outcome": "failed", "reason": "486"}, 1},
		{"msrpgw_sessions_created_total", map[string]string{"origin": "message"}, 1},
		{"msrpgw_sessions_setup_failed_total", map[string]string{"code": "486"}, 1},
		{"msrpgw_sessions_active", map[string]string{"state": "up"}, 1},
		{"msrpgw_sessions_active", map[string]string{"state": "setting-up"}, 0},
	} {
		got, ok := metricValue(m, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if !strings.Contains(m, "go_goroutines ") || !strings.Contains(m, "msrpgw_session_setup_seconds_count") {
		t.Error("/metrics lacks the Go runtime or the setup histogram")
	}

	cs.Bye()
	d.waitSessions("empty", func(l []admin.Session) bool { return len(l) == 0 })
	if got, _ := metricValue(d.metrics(), "msrpgw_sessions_active", map[string]string{"state": "up"}); got != 0 {
		t.Errorf("sessions_active{up} = %v after BYE, want 0", got)
	}
	d.stop()
}

func TestAdminToken(t *testing.T) {
	const token = "s3cret-token"
	d := startDaemon(t, daemonOpts{token: token})
	if code, _, err := d.tryDo("GET", "/healthz", "", ""); err != nil || code != 200 {
		t.Errorf("/healthz without token = %d %v, want 200", code, err)
	}
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/readyz", ""}, {"GET", "/api/sessions", ""}, {"GET", "/metrics", ""},
		{"DELETE", sessionPath("sip:a@127.0.0.1:sip:b@127.0.0.1"), ""}, {"POST", "/api/drain", ""},
		{"POST", "/mi", `{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "id": "1"}`},
	} {
		for _, tok := range []string{"", "wrong"} {
			if code, _, err := d.tryDo(ep.method, ep.path, ep.body, tok); err != nil || code != 401 {
				t.Errorf("%s %s with token %q = %d %v, want 401", ep.method, ep.path, tok, code, err)
			}
		}
	}
	for _, path := range []string{"/readyz", "/api/sessions", "/metrics"} {
		if code, _, err := d.tryDo("GET", path, "", token); err != nil || code != 200 {
			t.Errorf("GET %s with the token = %d %v, want 200", path, code, err)
		}
	}
	if r := d.mi(`{"jsonrpc": "2.0", "method": "msrp_gateway:list_sessions", "id": "1"}`); r.Error != nil {
		t.Errorf("/mi with the token: %+v", r.Error)
	}
	// The CLI: refused without the token, works with it (flag, or admin.token from -config).
	if code, _, stderr := cli(t, "sessions", "list", "-admin", d.admin); code != 1 || stderr == "" {
		t.Errorf("sessions list without token: exit %d, stderr %q; want 1 and a reason", code, stderr)
	}
	if code, out, stderr := cli(t, "sessions", "list", "-admin", d.admin, "-token", token, "-json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions list -token: exit %d %q %q", code, out, stderr)
	}
	if code, out, stderr := cli(t, "sessions", "list", "-config", d.cfgPath, "-admin", d.admin, "-json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions list with the config's token: exit %d %q %q", code, out, stderr)
	}
	d.stop()
}

func TestCLI(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	key, cs := upSession(t, d, phone, client)
	msrpID := d.sessions()[0].MSRPSessionID

	// -config FILE and -config=FILE both pick the config the admin URL comes from.
	for _, args := range [][]string{{"-config", "/nonexistent/msrpgw.yaml"}, {"-config=/nonexistent/msrpgw.yaml"}} {
		code, _, stderr := cli(t, append([]string{"sessions", "list"}, args...)...)
		if code != 1 || !strings.Contains(stderr, "/nonexistent/msrpgw.yaml") {
			t.Errorf("sessions list %v: exit %d, stderr %q; want 1 naming the config file", args, code, stderr)
		}
	}
	code, out, stderr := cli(t, "sessions", "list", "-admin", d.admin)
	if code != 0 || !strings.Contains(out, "KEY") || !strings.Contains(out, key) || !strings.Contains(out, "up") || !strings.Contains(out, msrpID) {
		t.Errorf("sessions list: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "sessions", "list", "-json", "-admin", d.admin)
	var list []admin.Session
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Key != key {
		t.Errorf("sessions list -json: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "sessions", "show", key, "-admin", d.admin)
	if code != 0 || !strings.Contains(out, key) || !strings.Contains(out, msrpID) || !strings.Contains(out, cs.CallID) {
		t.Errorf("sessions show: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "sessions", "show", "-json", "-admin", d.admin, key)
	var one admin.Session
	if code != 0 || json.Unmarshal([]byte(out), &one) != nil || one.Key != key || one.MSRPSessionID != msrpID {
		t.Errorf("sessions show -json: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "sessions", "end", key, "-admin", d.admin)
	if code != 0 || !strings.Contains(out, "ended") {
		t.Errorf("sessions end: exit %d\n%s%s", code, out, stderr)
	}
	cs.WaitBye()
	d.waitSessions("empty", func(l []admin.Session) bool { return len(l) == 0 })
	for _, args := range [][]string{{"show", key}, {"end", key}, {"end", "-json", key}} {
		code, _, stderr := cli(t, append(append([]string{"sessions"}, args...), "-admin", d.admin)...)
		if code != 1 || !strings.Contains(stderr, key) {
			t.Errorf("sessions %v of an ended session: exit %d, stderr %q; want 1 naming the key", args, code, stderr)
		}
	}

	// end -json on a live one.
	key, cs = upSession(t, d, phone, client)
	code, out, stderr = cli(t, "sessions", "end", "-json", "-admin", d.admin, key)
	var ended map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &ended) != nil || ended["key"] != key {
		t.Errorf("sessions end -json: exit %d\n%s%s", code, out, stderr)
	}
	cs.WaitBye()
	if code, _, _ := cli(t, "sessions", "frobnicate", "-admin", d.admin); code != 2 {
		t.Errorf("sessions frobnicate: exit %d, want 2", code)
	}
	d.stop()
}

// With admin.listen empty the admin API is off: the CLI says so instead of trying http://127.0.0.1 (port 80).
func TestCLIAdminOff(t *testing.T) {
	path := writeConfig(t, "admin:\n  listen: \"\"\n")
	code, _, stderr := cli(t, "sessions", "list", "-config", path)
	if code != 1 || !strings.Contains(stderr, "admin.listen is empty") || strings.Contains(stderr, "127.0.0.1") {
		t.Errorf("sessions list with the admin API off: exit %d, stderr %q; want 1 saying admin.listen is empty", code, stderr)
	}
}

// SIGHUP (a closed terminal, a `systemctl reload`) neither kills the daemon nor ends its sessions: it is
// logged and ignored, and the session carries on.
func TestSIGHUPIgnored(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	_, cs := upSession(t, d, phone, client)
	d.signal(syscall.SIGHUP)
	d.waitJSON(func(m map[string]any) bool { return strings.HasPrefix(fmt.Sprint(m["msg"]), "SIGHUP ignored") })
	if res := phone.Send(d.sipUDP, client.URI, "text/plain", "after HUP"); res.StatusCode != 200 {
		t.Fatalf("MESSAGE after SIGHUP answered %d", res.StatusCode)
	}
	if m := cs.Recv(); string(m.Body) != "after HUP" {
		t.Fatalf("got %q", m.Body)
	}
	if cs.GotBye() {
		t.Fatal("the session got BYE on SIGHUP")
	}
	d.stop()
}

// An admin API client that sends part of a request body and stalls has its connection closed once the read
// timeout passes, instead of holding it (and the daemon's shutdown) for as long as it likes.
func TestAdminStalledBodyCut(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	c, err := net.Dial("tcp", strings.TrimPrefix(d.admin, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /mi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":")
	start := time.Now()
	c.SetReadDeadline(start.Add(adminReadTimeout + 5*time.Second))
	_, err = io.ReadAll(c) // whatever the server says, it must end the connection
	if err != nil {
		t.Fatalf("connection still open %s after a stalled body: %v", time.Since(start).Round(time.Millisecond), err)
	}
	d.stop()
}

// The usage lists what `msrpgw sessions` takes, -config FILE included (docs/OPERATIONS.md "CLI").
func TestUsageListsSessionsConfig(t *testing.T) {
	var o, e bytes.Buffer
	run([]string{"help"}, &o, &e)
	for _, line := range strings.Split(o.String(), "\n") {
		if strings.Contains(line, "msrpgw sessions") {
			if !strings.Contains(line, "[-config FILE]") {
				t.Errorf("usage line %q does not list -config FILE", line)
			}
			return
		}
	}
	t.Errorf("usage does not list msrpgw sessions:\n%s", o.String())
}

// `msrpgw sessions` documents its -config flag in its usage, and a -config without a FILE is a usage error.
func TestSessionsConfigFlag(t *testing.T) {
	code, _, stderr := cli(t, "sessions", "-h")
	if code != 0 || !strings.Contains(stderr, "-config") {
		t.Errorf("msrpgw sessions -h: exit %d, usage does not list -config:\n%s", code, stderr)
	}
	code, _, stderr = cli(t, "sessions", "list", "-config")
	if code != 2 || strings.Contains(stderr, "not defined: -config") {
		t.Errorf("msrpgw sessions list -config: exit %d, stderr:\n%s\nwant exit 2 saying -config needs a FILE", code, stderr)
	}
}

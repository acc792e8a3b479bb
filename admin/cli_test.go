package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// runCLI runs `msrpgw sessions args...` and returns exit code, stdout and stderr.
func runCLI(defaultURL, defaultToken string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := RunSessions(args, defaultURL, defaultToken, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIList(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	code, out, errs := runCLI(srv.URL, "", "list")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 rows, got:\n%s", out)
	}
	for _, col := range []string{"KEY", "STATE", "ORIGIN", "MSRP SESSION", "QUEUED"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %q", lines[0], col)
		}
	}
	// Aligned: the STATE column starts at the same offset on every line.
	col := strings.Index(lines[0], "STATE")
	for i, s := range liveSessions() {
		row := lines[i+1]
		if !strings.HasPrefix(row, s.Key+" ") {
			t.Errorf("row %d %q does not start with key %q (oldest first)", i, row, s.Key)
		}
		if !strings.HasPrefix(row[col:], s.State) {
			t.Errorf("row %d: state not aligned under STATE:\n%s\n%s", i, lines[0], row)
		}
		if !strings.Contains(row, s.MSRPSessionID) {
			t.Errorf("row %d lacks the MSRP session-id %q", i, s.MSRPSessionID)
		}
	}
}

func TestCLIListEmpty(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{})
	code, out, _ := runCLI(srv.URL, "", "list")
	if code != 0 || !strings.Contains(out, "(no sessions)") {
		t.Fatalf("exit %d out %q", code, out)
	}
	code, out, _ = runCLI(srv.URL, "", "list", "-json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("-json: exit %d out %q, want []", code, out)
	}
}

func TestCLIListJSON(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	for _, args := range [][]string{{"list", "-json"}, {"-json", "list"}} {
		code, out, errs := runCLI(srv.URL, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", args, code, errs)
		}
		var got []Session
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 3 || got[2].Key != keySlash {
			t.Fatalf("%v: output is not the API's JSON (%v):\n%s", args, err, out)
		}
	}
}

func TestCLIShowAndEnd(t *testing.T) {
	for _, s := range liveSessions() {
		t.Run(s.Key, func(t *testing.T) {
			gw := newFakeGateway(liveSessions()...)
			srv := newTestServer(t, gw, nil, Options{})
			code, out, errs := runCLI(srv.URL, "", "show", s.Key)
			if code != 0 {
				t.Fatalf("show: exit %d, stderr %s", code, errs)
			}
			for _, want := range []string{s.Key, s.State, s.MsgSideTo, s.MSRPSessionID, s.CallID} {
				if !strings.Contains(out, want) {
					t.Errorf("show output lacks %q:\n%s", want, out)
				}
			}
			code, out, _ = runCLI(srv.URL, "", "show", s.Key, "-json")
			var got Session
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !sessionEqual(got, s) {
				t.Errorf("show -json: exit %d, got %+v", code, got)
			}

			code, out, errs = runCLI(srv.URL, "", "end", s.Key)
			if code != 0 || !strings.Contains(out, "ended") {
				t.Fatalf("end: exit %d out %q stderr %s", code, out, errs)
			}
			if e := gw.endedKeys(); len(e) != 1 || e[0] != s.Key {
				t.Fatalf("gateway ended %q, want %q", e, s.Key)
			}
			// Now gone: a clear line on stderr and a non-zero exit, for both commands.
			for _, cmd := range []string{"show", "end"} {
				code, out, errs = runCLI(srv.URL, "", cmd, s.Key)
				if code != 1 || out != "" || !strings.Contains(errs, "no such session") || !strings.Contains(errs, s.Key) {
					t.Errorf("%s of a gone session: exit %d out %q stderr %q", cmd, code, out, errs)
				}
			}
		})
	}
}

func TestCLIToken(t *testing.T) {
	gw := newFakeGateway(liveSessions()...)
	srv := newTestServer(t, gw, nil, Options{Token: "tok"})
	code, _, errs := runCLI(srv.URL, "", "list")
	if code != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "-token") {
		t.Errorf("no token: exit %d stderr %q, want 1 and a hint about -token", code, errs)
	}
	if code, _, errs := runCLI(srv.URL, "tok", "list"); code != 0 {
		t.Errorf("default token from config: exit %d stderr %q", code, errs)
	}
	if code, _, errs := runCLI(srv.URL, "wrong", "list", "-token", "tok"); code != 0 {
		t.Errorf("-token overrides the config: exit %d stderr %q", code, errs)
	}
}

func TestCLIUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	code, out, errs := runCLI(addr, "", "list") // a bare host:port, as admin.listen gives it
	if code != 1 || out != "" || !strings.Contains(errs, "cannot reach the admin API at http://"+addr) {
		t.Errorf("exit %d out %q stderr %q", code, out, errs)
	}
	if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("want one line on stderr, got %q", errs)
	}
}

func TestCLIDefaultURLAndAdminFlag(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(liveSessions()...), nil, Options{})
	hostport := strings.TrimPrefix(srv.URL, "http://")
	if code, _, errs := runCLI(hostport, "", "list"); code != 0 {
		t.Errorf("bare host:port default: exit %d %s", code, errs)
	}
	if code, _, errs := runCLI("127.0.0.1:1", "", "-admin", srv.URL, "list"); code != 0 {
		t.Errorf("-admin overrides the default: exit %d %s", code, errs)
	}
	_, port, _ := net.SplitHostPort(hostport)
	if code, _, errs := runCLI("0.0.0.0:"+port, "", "list"); code != 0 {
		t.Errorf("wildcard listen address dials loopback: exit %d %s", code, errs)
	}
}

func TestCLIUsage(t *testing.T) {
	cases := [][]string{
		{},
		{"frobnicate"},
		{"show"},
		{"end"},
		{"show", "a", "b"},
		{"list", "extra"},
		{"list", "-nosuchflag"},
	}
	for _, args := range cases {
		code, out, errs := runCLI("127.0.0.1:1", "", args...)
		if code != 2 || out != "" || errs == "" {
			t.Errorf("%q: exit %d out %q stderr %q, want 2 and a message on stderr", args, code, out, errs)
		}
	}
	if code, _, errs := runCLI("127.0.0.1:1", "", "-h"); code != 0 || !strings.Contains(errs, "usage: msrpgw sessions") {
		t.Errorf("-h: exit %d stderr %q", code, errs)
	}
}

func TestClientErrors(t *testing.T) {
	srv := newTestServer(t, newFakeGateway(), nil, Options{Token: "t"})
	c := &Client{BaseURL: srv.URL, Token: "t"}
	if _, err := c.Show(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show unknown: %v, want ErrNotFound", err)
	}
	if err := c.End(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("End unknown: %v, want ErrNotFound", err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Errorf("Drain: %v", err)
	}
	c.Token = ""
	if _, err := c.List(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("List without token: %v, want ErrUnauthorized", err)
	}
}

func TestNormalizeAdminURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://[::1]:8080"},
		{"[::1]:9", "http://[::1]:9"},
		{"https://gw.example.net:8443/admin", "https://gw.example.net:8443/admin"},
		{"localhost:8080", "http://localhost:8080"},
	}
	for _, c := range cases {
		got, err := NormalizeAdminURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeAdminURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "ftp://x:1", "http://[::1"} {
		if got, err := NormalizeAdminURL(bad); err == nil {
			t.Errorf("NormalizeAdminURL(%q) = %q, want an error", bad, got)
		}
	}
}

func TestCLIHelpHidesToken(t *testing.T) {
	_, _, errs := runCLI("127.0.0.1:1", "supersecret", "-h")
	if strings.Contains(errs, "supersecret") {
		t.Errorf("-h printed the configured token:\n%s", errs)
	}
}

func TestSince(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"}, {42 * time.Second, "42s"}, {61*time.Minute + 5*time.Second, "1h1m"}, {3 * time.Minute, "3m0s"},
		{50 * time.Hour, "2d2h"}, {-time.Second, "0s"},
	}
	for _, c := range cases {
		if got := since(now, now.Add(-c.ago)); got != c.want {
			t.Errorf("since(%v ago) = %q, want %q", c.ago, got, c.want)
		}
	}
	if got := since(now, time.Time{}); got != "-" {
		t.Errorf("since(zero) = %q, want -", got)
	}
}

// `msrpgw sessions list` pointed at a wrong URL (another HTTP service, a reverse-proxy path that does not exist)
// gets a plain 404 and tells the operator "no such session", which a list has no notion of: every 404 is mapped
// to ErrNotFound, whatever answered it. docs: "Exit codes: 0 done, 1 failed (no such session, admin API
// unreachable, 401) with one line on stderr".
func TestCLIListWrongURLIsNotNoSuchSession(t *testing.T) {
	other := httptest.NewServer(http.NotFoundHandler()) // not the admin API: plain-text 404 for everything
	t.Cleanup(other.Close)
	code, _, stderr := runCLI(other.URL, "", "list")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if strings.Contains(stderr, "no such session") {
		t.Errorf("`sessions list` against a URL that is not the admin API says: %q", strings.TrimSpace(stderr))
	}
}

// An answer larger than any fixed read cap (the client once cut answers at 64 MiB, about 88,000 IMS-style
// sessions, under limits.max_sessions) is read whole. The listing here is padded with whitespace, which JSON
// allows between values, to 66 MiB: large without costing minutes of encoding under -race.
func TestClientReadsLargeListing(t *testing.T) {
	pad := bytes.Repeat([]byte(" "), 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"key":"a:b","state":"up"}`)
		for range 66 {
			w.Write(pad)
		}
		io.WriteString(w, `,{"key":"c:d","state":"up"}]`)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ss, err := (&Client{BaseURL: srv.URL}).List(ctx)
	if err != nil || len(ss) != 2 || ss[1].Key != "c:d" {
		t.Fatalf("a 66 MiB listing of 2 sessions: got %+v (%v)", ss, err)
	}
}

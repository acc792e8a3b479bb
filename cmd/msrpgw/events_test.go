package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/admin"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// hookReceiver records the webhook POSTs it gets.
type hookReceiver struct {
	srv *httptest.Server
	got chan map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{got: make(chan map[string]any, 256)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(b, &ev) != nil {
			t.Errorf("webhook got %s %s %q", r.Method, r.Header.Get("Content-Type"), b)
			w.WriteHeader(400)
			return
		}
		h.got <- ev
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) wait(t *testing.T, kind string) map[string]any {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev := <-h.got:
			if ev["event"] == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("webhook got no %s event within %s", kind, waitFor)
		}
	}
}

func TestWebhooks(t *testing.T) {
	hook := newHookReceiver(t)
	// A receiver that never answers, and a URL where nothing listens: neither may slow message handling.
	release := make(chan struct{})
	var releaseOnce sync.Once
	unhang := func() { releaseOnce.Do(func() { close(release) }) }
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(unhang) // runs first: lets hanging.Close finish
	dead := fmt.Sprintf("http://127.0.0.1:%d/hook", freePort(t))
	// A receiver that is down (503) for its first request, then back: the retry delivers the event.
	var flakyCalls atomic.Int32
	flakyGot := make(chan map[string]any, 16)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyCalls.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		var ev map[string]any
		if json.NewDecoder(r.Body).Decode(&ev) == nil {
			flakyGot <- ev
		}
	}))
	t.Cleanup(flaky.Close)
	d := startDaemon(t, daemonOpts{extra: fmt.Sprintf(`events:
  webhooks:
    - {url: %q, events: [setup_failed, session_started]}
    - {url: %q, events: []}
    - {url: %q, events: [setup_failed, session_started, message_failed]}
    - {url: %q, events: [setup_failed]}
`, hook.srv.URL+"/events", hanging.URL, dead, flaky.URL)})

	phone, busy := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	busy.SetAnswer(486, "")
	if res := phone.Send(d.sipUDP, busy.URI, "text/plain", "hi"); res.StatusCode != 486 {
		t.Fatalf("MESSAGE answered %d, want 486", res.StatusCode)
	}
	ev := hook.wait(t, "setup_failed")
	want := map[string]any{
		"key": busy.URI + ":" + phone.URI, "from_uri": busy.URI, "to_uri": phone.URI, "ruri": phone.URI,
		"code": float64(486), "reason": "Busy Here",
	}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("setup_failed %s = %v, want %v (event %v)", k, ev[k], v, ev)
		}
	}
	documentedFields(t, ev, "../../docs/OPERATIONS.md", "../../admin/README.md")

	select {
	case ev := <-flakyGot:
		if ev["event"] != "setup_failed" || ev["code"] != float64(486) || flakyCalls.Load() < 2 {
			t.Errorf("the receiver that came back got %v after %d calls", ev, flakyCalls.Load())
		}
	case <-time.After(waitFor):
		t.Errorf("the receiver that came back never got the event (%d calls)", flakyCalls.Load())
	}

	// Messages keep flowing, one after the other, while two webhooks hang or refuse every event.
	client := testpeer.NewClient(t, "carol")
	key, cs := upSession(t, d, phone, client)
	if ev := hook.wait(t, "session_started"); ev["key"] != key {
		t.Errorf("session_started for %v, want %s", ev["key"], key)
	}
	for i := 0; i < 50; i++ {
		if res := phone.Send(d.sipUDP, client.URI, "text/plain", fmt.Sprint("m", i)); res.StatusCode != 200 {
			t.Fatalf("MESSAGE %d answered %d", i, res.StatusCode)
		}
		cs.Recv()
	}
	// The dead webhook's failed attempts are counted, not waited for.
	deadline := time.Now().Add(waitFor)
	for {
		if n, _ := metricValue(d.metrics(), "msrpgw_webhook_events_total", map[string]string{"result": "failed"}); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no failed webhook attempt counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := metricValue(d.metrics(), "msrpgw_webhook_events_total", map[string]string{"result": "sent"}); n < 2 {
		t.Errorf("webhook events sent = %v, want at least 2", n)
	}
	// Only the kinds asked for reach the first receiver.
	select {
	case ev := <-hook.got:
		if ev["event"] != "setup_failed" && ev["event"] != "session_started" {
			t.Errorf("webhook got %v, which it did not ask for", ev["event"])
		}
	default:
	}
	// The daemon gives queued webhook events up to shutdown_timeout+15s on exit: let the hanging receiver go
	// so that this test stays fast (see the report on bounding dispatcher.Close).
	unhang()
	d.stop()
}

// TestJSONLogs: with log.format json every line is a JSON object, and session events carry the key, the
// Call-ID and the MSRP session-id.
func TestJSONLogs(t *testing.T) {
	d := startDaemon(t, daemonOpts{})
	phone, client := testpeer.NewPhone(t, "alice"), testpeer.NewClient(t, "bob")
	key, cs := upSession(t, d, phone, client)
	cs.Bye()
	d.waitSessions("empty", func(l []admin.Session) bool { return len(l) == 0 })
	busy := testpeer.NewClient(t, "carol")
	busy.SetAnswer(486, "")
	phone.Send(d.sipUDP, busy.URI, "text/plain", "hi")
	phone.Recv() // the setup-failed notification
	client2 := testpeer.NewClient(t, "dave")
	key2, _ := upSession(t, d, phone, client2)
	d.stop()

	seen := map[string]int{}
	for i, line := range d.logLines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("line %d is not JSON (%v): %s", i+1, err, line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d has no %s: %s", i+1, k, line)
			}
		}
		msg, _ := m["msg"].(string)
		switch msg {
		case "session up", "session ended", "session setup failed", "session created":
		default:
			continue
		}
		seen[msg]++
		fields := []string{"key", "call_id", "msrp_session_id"}
		if msg == "session created" && m["origin"] == "message" {
			// The MSRP session-id is chosen when the INVITE goes out, after this line.
			fields = fields[:2]
		}
		for _, k := range fields {
			if s, _ := m[k].(string); s == "" {
				t.Errorf("%q line lacks %s: %s", msg, k, line)
			}
		}
		if k := m["key"]; k != key && k != key2 && k != busy.URI+":"+phone.URI {
			t.Errorf("%q line for unknown key %v", msg, k)
		}
	}
	for msg, n := range map[string]int{"session created": 3, "session up": 2, "session ended": 3, "session setup failed": 1} {
		if seen[msg] < n {
			t.Errorf("%d %q lines, want at least %d (seen %v)", seen[msg], msg, n, seen)
		}
	}
}

// documentedFields checks that the setup_failed webhook example of each doc has exactly the fields of ev, the
// event a receiver got: a receiver written from the docs must know every field it is sent.
func documentedFields(t *testing.T, ev map[string]any, docs ...string) {
	t.Helper()
	for _, path := range docs {
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(doc), "```json\n{\"event\":\"setup_failed\"")
		if !ok {
			t.Errorf("%s has no setup_failed webhook example", path)
			continue
		}
		body, _, _ := strings.Cut(rest, "```")
		var example map[string]any
		if err := json.Unmarshal([]byte(`{"event":"setup_failed"`+body), &example); err != nil {
			t.Errorf("%s: the setup_failed example is not JSON: %v", path, err)
			continue
		}
		for k := range ev {
			if _, ok := example[k]; !ok {
				t.Errorf("%s: the setup_failed example lacks %q, which the webhook sends", path, k)
			}
		}
		for k := range example {
			if _, ok := ev[k]; !ok {
				t.Errorf("%s: the setup_failed example has %q, which the webhook does not send", path, k)
			}
		}
	}
}

// With log.format json, OPERATIONS.md promises "one JSON object per line, including what the SIP stack itself
// logs". The admin http.Server has no ErrorLog, so net/http's own errors go to the standard logger in Go's
// default text format: here, the daemon out of file descriptors (the situation OPERATIONS.md describes for the
// SIP listeners, which log "SIP accept failed, retrying" through slog) logs "http: Accept error: ...; retrying
// in 5ms" lines that are not JSON, for every retry.
func TestAdminServerErrorsAreJSONLogged(t *testing.T) {
	path := writeConfig(t, fmt.Sprintf(baseConfig, "3s", "2s", "", ""))
	d := runBinary(t, "/bin/sh", nil, "-c", `ulimit -n 64 && exec "$0" -config "$1"`, daemonBin, path)
	d.cfgPath = path
	listening := d.waitJSON(func(m map[string]any) bool { return m["msg"] == "admin API listening" })
	addr := fmt.Sprint(listening["addr"])
	var conns []net.Conn
	for range 80 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond)
	for _, c := range conns {
		c.Close()
	}
	bad := 0
	for _, line := range d.logLines() {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			if bad < 3 {
				t.Errorf("log line is not JSON: %s", line)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d log lines are not JSON (log.format json)", bad)
	}
	d.stop()
}

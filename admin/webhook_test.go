package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
)

// receiver is a webhook endpoint whose behaviour a test switches: ok, fail (503), hang (until the request is
// abandoned) or slow (hang on the first attempt of each event, then answer).
type receiver struct {
	mu       sync.Mutex
	mode     string
	got      []map[string]any
	attempts int
	seen     map[string]int // attempts per event key
}

func (r *receiver) setMode(m string) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
}

func (r *receiver) events() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ev map[string]any
	_ = json.Unmarshal(body, &ev)
	key, _ := ev["key"].(string)
	r.mu.Lock()
	r.attempts++
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[key]++
	n := r.seen[key]
	mode := r.mode
	r.mu.Unlock()
	hang := mode == "hang" || (mode == "slow" && n == 1)
	if hang {
		<-req.Context().Done() // the dispatcher's per-attempt timeout or Close abandons it
		return
	}
	if mode == "fail" || req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, ev)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func webhookCount(m *Metrics, result string) int {
	return int(testutil.ToFloat64(m.webhook[result]))
}

// eventually polls cond; it bounds how long a broken implementation can hang the test, it asserts no timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func setupFailedEvent(key string) event.Event {
	return event.Event{Kind: event.SetupFailed, Time: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), Key: key,
		FromURI: "sip:bob@b.example.com", ToURI: "sip:alice@a.example.com", RURI: "sip:alice@a.example.com",
		Code: 486, Reason: "Busy Here", CallID: "c1@127.0.0.1"}
}

func TestWebhookDeliversWantedKindsAsEventJSON(t *testing.T) {
	rcv := &receiver{mode: "ok"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"setup_failed", "session_ended"}}}, m, DispatcherOptions{})
	d.Publish(setupFailedEvent(keyAlice))
	d.Publish(event.Event{Kind: event.SessionStarted, Key: keyAlice})                            // not wanted
	d.Publish(event.Event{Kind: event.MessageDelivered, Key: keyAlice, Direction: event.ToMSRP}) // not wanted
	d.Publish(event.Event{Kind: event.SessionEnded, Key: keyCarol, Reason: "bye"})
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := rcv.events()
	if len(got) != 2 {
		t.Fatalf("receiver got %d events, want 2: %v", len(got), got)
	}
	// setup_failed carries the reference's fields: key, from_uri, to_uri, ruri, code, reason.
	want := map[string]any{"event": "setup_failed", "key": keyAlice, "from_uri": "sip:bob@b.example.com",
		"to_uri": "sip:alice@a.example.com", "ruri": "sip:alice@a.example.com", "code": float64(486),
		"reason": "Busy Here", "call_id": "c1@127.0.0.1", "time": "2025-03-01T10:00:00Z"}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("setup_failed %s = %v, want %v", k, got[0][k], v)
		}
	}
	if got[1]["event"] != "session_ended" || got[1]["reason"] != "bye" {
		t.Errorf("second event %v", got[1])
	}
	if _, ok := got[1]["time"].(string); !ok || got[1]["time"] == "0001-01-01T00:00:00Z" {
		t.Errorf("an event published without a time gets one: %v", got[1]["time"])
	}
	if s, f, dr := webhookCount(m, webhookSent), webhookCount(m, webhookFailed), webhookCount(m, webhookDropped); s != 2 || f != 0 || dr != 0 {
		t.Errorf("sent/failed/dropped %d/%d/%d, want 2/0/0", s, f, dr)
	}
}

// An empty events list means every webhook event (config.WebhookEvents), not the gateway's internal kinds:
// one message_delivered per message, or a request_refused per refused request, would flood the receiver.
func TestWebhookEmptyEventsMeansAll(t *testing.T) {
	rcv := &receiver{mode: "ok"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d := NewDispatcher([]Webhook{{URL: srv.URL}}, nil, DispatcherOptions{})
	for _, k := range []event.Kind{event.SetupFailed, event.SessionStarted, event.MessageDelivered, event.SessionEnded,
		event.MessageDropped, event.MessageFailed, event.RequestRefused} {
		d.Publish(event.Event{Kind: k, Key: string(k)})
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rcv.events() {
		got = append(got, fmt.Sprint(e["event"]))
	}
	if want := config.WebhookEvents(); !slices.Equal(got, want) {
		t.Fatalf("got events %v, want %v", got, want)
	}
}

// A receiver that is slow, then down, then back: slow attempts time out and are retried, events that exhaust
// their attempts are dropped and counted, and delivery resumes when it is back.
func TestWebhookSlowDownBack(t *testing.T) {
	rcv := &receiver{mode: "slow"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"message_failed"}}}, m,
		DispatcherOptions{Timeout: 500 * time.Millisecond, Attempts: 3, Backoff: time.Millisecond})
	defer d.Close(context.Background())

	// Slow: every event's first attempt hangs past the timeout; the retry gets through.
	d.Publish(event.Event{Kind: event.MessageFailed, Key: "slow-1"})
	d.Publish(event.Event{Kind: event.MessageFailed, Key: "slow-2"})
	eventually(t, "slow events delivered on retry", func() bool { return webhookCount(m, webhookSent) == 2 })
	if f := webhookCount(m, webhookFailed); f != 2 {
		t.Errorf("failed attempts %d, want 2 (one timeout per event)", f)
	}

	// Down (503 to everything): each event uses its 3 attempts, then is dropped.
	rcv.setMode("fail")
	d.Publish(event.Event{Kind: event.MessageFailed, Key: "down-1"})
	d.Publish(event.Event{Kind: event.MessageFailed, Key: "down-2"})
	eventually(t, "down events dropped", func() bool { return webhookCount(m, webhookDropped) == 2 })
	if f := webhookCount(m, webhookFailed); f != 2+2*3 {
		t.Errorf("failed attempts %d, want 8", f)
	}

	// Back.
	rcv.setMode("ok")
	d.Publish(event.Event{Kind: event.MessageFailed, Key: "back-1"})
	eventually(t, "delivery resumes", func() bool { return webhookCount(m, webhookSent) == 3 })
	got := rcv.events()
	var keys []string
	for _, e := range got {
		keys = append(keys, e["key"].(string))
	}
	if fmt.Sprint(keys) != "[slow-1 slow-2 back-1]" {
		t.Errorf("receiver got %v, want [slow-1 slow-2 back-1] in order", keys)
	}
}

func TestWebhookConnectionRefusedIsRetriedThenDropped(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/hook"
	l.Close() // nothing listens there now: connection refused
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: dead, Events: []string{"setup_failed"}}}, m,
		DispatcherOptions{Attempts: 2, Backoff: time.Millisecond})
	d.Publish(setupFailedEvent(keyAlice))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f, dr := webhookCount(m, webhookFailed), webhookCount(m, webhookDropped); f != 2 || dr != 1 {
		t.Errorf("failed/dropped %d/%d, want 2/1", f, dr)
	}
}

// An event listed twice for one webhook is still posted to it once.
func TestWebhookEventListedTwicePostedOnce(t *testing.T) {
	rcv := &receiver{mode: "ok"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"setup_failed", "setup_failed"}}}, nil, DispatcherOptions{})
	d.Publish(setupFailedEvent(keyAlice))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.events()); n != 1 {
		t.Fatalf("got %d events, want 1", n)
	}
}

// A password in a webhook URL (http://user:pass@host/) goes to the receiver, never into the logs.
func TestWebhookLogsHideURLPassword(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://hookuser:TopSecret@" + l.Addr().String() + "/hook"
	l.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := NewDispatcher([]Webhook{{URL: dead, Events: []string{"setup_failed"}}}, nil,
		DispatcherOptions{Attempts: 2, Backoff: time.Millisecond, Logger: log})
	d.Publish(setupFailedEvent(keyAlice))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if out := logs.String(); strings.Contains(out, "TopSecret") || !strings.Contains(out, "webhook event dropped") || !strings.Contains(out, l.Addr().String()) {
		t.Errorf("logs show the password, or not the drop and its host:\n%s", out)
	}
}

func TestWebhookPermanentRefusalIsNotRetried(t *testing.T) {
	var attempts int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		mu.Unlock()
		http.Error(w, "no such hook", http.StatusNotFound)
	}))
	defer srv.Close()
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"setup_failed"}}}, m, DispatcherOptions{Attempts: 5, Backoff: time.Millisecond})
	d.Publish(setupFailedEvent(keyAlice))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || webhookCount(m, webhookDropped) != 1 {
		t.Errorf("attempts %d dropped %d, want 1 and 1 (a 404 will not change on retry)", attempts, webhookCount(m, webhookDropped))
	}
}

// A receiver that redirects: not followed (net/http would repeat the POST as a GET without the event and call
// it delivered); the event is dropped and counted as such.
func TestWebhookRedirectIsNotFollowed(t *testing.T) {
	var posts, others int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/moved" {
			others++
			return
		}
		posts++
		http.Redirect(w, r, "/moved", http.StatusFound)
	}))
	defer srv.Close()
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: srv.URL + "/hook", Events: []string{"setup_failed"}}}, m, DispatcherOptions{Attempts: 3, Backoff: time.Millisecond})
	d.Publish(setupFailedEvent(keyAlice))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts != 1 || others != 0 || webhookCount(m, webhookDropped) != 1 || webhookCount(m, webhookSent) != 0 {
		t.Errorf("posts %d, requests to the new URL %d, dropped %d, sent %d; want 1, 0, 1, 0",
			posts, others, webhookCount(m, webhookDropped), webhookCount(m, webhookSent))
	}
}

// A receiver that hangs and a tiny queue: Publish still returns at once for every event, and what does not fit is
// dropped and counted. Close with an ended context abandons the in-flight attempt and the queue.
func TestWebhookHangingReceiverNeverBlocksPublish(t *testing.T) {
	rcv := &receiver{mode: "hang"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	m := NewMetrics(nil)
	const queue, n = 2, 200
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"message_failed"}}}, m,
		DispatcherOptions{Queue: queue, Timeout: time.Hour, Attempts: 3})
	for i := range n {
		d.Publish(event.Event{Kind: event.MessageFailed, Key: fmt.Sprint(i)})
	}
	// At most one event is in flight and `queue` wait; everything else was dropped at Publish.
	if dr := webhookCount(m, webhookDropped); dr < n-queue-1 {
		t.Errorf("dropped %d at Publish, want at least %d", dr, n-queue-1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with an ended context: %v, want context.Canceled", err)
	}
	if s, dr := webhookCount(m, webhookSent), webhookCount(m, webhookDropped); s != 0 || dr != n {
		t.Errorf("sent %d dropped %d, want 0 and %d: every event accounted for", s, dr, n)
	}
	// After Close, Publish still returns and counts.
	d.Publish(event.Event{Kind: event.MessageFailed})
	if dr := webhookCount(m, webhookDropped); dr != n+1 {
		t.Errorf("Publish after Close: dropped %d, want %d", dr, n+1)
	}
}

func TestWebhookCloseFlushesQueue(t *testing.T) {
	rcv := &receiver{mode: "ok"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	m := NewMetrics(nil)
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"session_started"}}}, m, DispatcherOptions{Queue: 100})
	for i := range 50 {
		d.Publish(event.Event{Kind: event.SessionStarted, Key: fmt.Sprint(i)})
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.events()); n != 50 || webhookCount(m, webhookSent) != 50 {
		t.Fatalf("after Close: receiver has %d, sent %d, want 50 each", n, webhookCount(m, webhookSent))
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWebhookCloseReleasesWorkers(t *testing.T) {
	rcv := &receiver{mode: "hang"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()
	hooks := make([]Webhook, 8)
	for i := range hooks {
		hooks[i] = Webhook{URL: srv.URL, Events: []string{"session_ended"}}
	}
	d := NewDispatcher(hooks, nil, DispatcherOptions{Client: client, Timeout: time.Hour})
	d.Publish(event.Event{Kind: event.SessionEnded, Key: "k"}) // every worker now hangs in a request
	eventually(t, "all workers in a request", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.attempts == len(hooks)
	})
	if during := runtime.NumGoroutine(); during < before+len(hooks) {
		t.Fatalf("goroutines %d while running, want at least %d", during, before+len(hooks))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = d.Close(ctx)
	eventually(t, "goroutines back to the count before NewDispatcher", func() bool { return settle() <= before })
}

func BenchmarkDispatcherPublish(b *testing.B) {
	rcv := &receiver{mode: "ok"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d := NewDispatcher([]Webhook{{URL: srv.URL, Events: []string{"setup_failed"}}}, nil, DispatcherOptions{})
	defer d.Close(context.Background())
	e := event.Event{Kind: event.MessageDelivered, Direction: event.ToSIP} // not wanted: the per-message path
	b.ReportAllocs()
	for b.Loop() {
		d.Publish(e)
	}
}

// A refused webhook URL never shows its password.
func TestValidateWebhooksHidesPassword(t *testing.T) {
	for _, u := range []string{"ftp://hook:s3cret@127.0.0.1/x", "http://hook:s3cret@127.0.0.1:bad/x"} {
		err := ValidateWebhooks([]Webhook{{URL: u}})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("url %q: error %v, want one without the password", u, err)
		}
	}
}

func TestValidateWebhooks(t *testing.T) {
	good := []Webhook{
		{URL: "http://127.0.0.1:9000/hook", Events: []string{"setup_failed", "session_started", "session_ended", "message_failed"}},
		{URL: "https://hooks.example.net/msrpgw"},
	}
	if err := ValidateWebhooks(good); err != nil {
		t.Errorf("valid webhooks refused: %v", err)
	}
	for _, bad := range []Webhook{
		{URL: "127.0.0.1:9000/hook"},
		{URL: "ftp://127.0.0.1/x"},
		{URL: "http:///nohost"},
		{URL: "http://127.0.0.1/x", Events: []string{"setup-failed"}},
		{URL: "http://127.0.0.1/x", Events: []string{"message_delivered"}}, // not a webhook event, as in config
	} {
		if err := ValidateWebhooks([]Webhook{bad}); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

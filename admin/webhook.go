package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msrpgw/msrpgw/event"
)

// Webhook is one configured receiver: events whose Kind is listed in Events are POSTed to URL as JSON (the
// event.Event JSON form). An empty Events list means every webhook event (webhookKinds).
type Webhook struct {
	URL    string
	Events []string
}

// webhookKinds are the events a webhook may subscribe to (SPEC §6 events.webhooks, config.WebhookEvents). The
// other kinds (a delivered message, a refused request, a dropped control payload) come once per message or
// request: they are for metrics and logs, and would flood a receiver.
func webhookKinds() []event.Kind {
	return []event.Kind{event.SetupFailed, event.SessionStarted, event.SessionEnded, event.MessageFailed}
}

// DispatcherOptions tune webhook delivery; zero values take the defaults.
type DispatcherOptions struct {
	Queue    int           // events waiting per webhook before new ones are dropped (default 1024)
	Timeout  time.Duration // per attempt (default 2s)
	Attempts int           // attempts per event, including the first (default 3)
	Backoff  time.Duration // wait before the second attempt, doubled for each further one (default 200ms)
	Client   *http.Client  // default: a client with no overall timeout (Timeout bounds each attempt)
	Logger   *slog.Logger  // nil discards
}

// Dispatcher posts events to webhooks. Publish only enqueues: each webhook has its own bounded queue and worker
// goroutine, so a slow or dead receiver delays nothing but its own queue, and what does not fit is dropped and
// counted. Close stops the workers.
type Dispatcher struct {
	hooks   []*hookWorker
	byKind  map[event.Kind][]*hookWorker // which workers want which kind, resolved once
	metrics *Metrics
	log     *slog.Logger

	mu     sync.RWMutex // guards closed against Publish racing Close
	closed bool

	quit       chan struct{}      // closed by Close: workers flush and exit
	base       context.Context    // every attempt and backoff runs under it
	cancelBase context.CancelFunc // called when Close's ctx ends, to abandon what is left
	wg         sync.WaitGroup
}

// hookWorker is one webhook's queue and delivery settings.
type hookWorker struct {
	url      string
	shown    string // url with its password, if any, masked: what logs and errors say
	queue    chan event.Event
	dropping atomic.Bool // set while drops happen, so a dead receiver logs once, not once per event
}

// ValidateWebhooks checks configured webhooks (events.webhooks) so that a typo fails start-up instead of
// silently never firing: each URL must be an absolute http or https URL, each event one of webhookKinds.
func ValidateWebhooks(hooks []Webhook) error {
	known := webhookKinds()
	for i, h := range hooks {
		u, err := url.Parse(h.URL)
		switch {
		case err != nil && strings.Contains(h.URL, "@"):
			return fmt.Errorf("events.webhooks[%d]: url is not a URL (not shown: it may hold a password)", i)
		case err != nil:
			return fmt.Errorf("events.webhooks[%d]: url %q is not an absolute http(s) URL", i, h.URL)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			return fmt.Errorf("events.webhooks[%d]: url %q is not an absolute http(s) URL", i, u.Redacted())
		}
		for _, e := range h.Events {
			if !slices.Contains(known, event.Kind(e)) {
				return fmt.Errorf("events.webhooks[%d]: unknown event %q (known: %v)", i, e, known)
			}
		}
	}
	return nil
}

// NewDispatcher starts one worker per webhook. m may be nil.
func NewDispatcher(hooks []Webhook, m *Metrics, opts DispatcherOptions) *Dispatcher {
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.Client == nil {
		// Redirects are not followed: net/http would repeat a POST answered 301/302/303 as a GET without the
		// event, and count its 200 as delivered. A redirect is an answer to fix the URL by.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		byKind:     make(map[event.Kind][]*hookWorker),
		metrics:    m,
		log:        opts.Logger,
		quit:       make(chan struct{}),
		base:       base,
		cancelBase: cancel,
	}
	for _, h := range hooks {
		w := &hookWorker{url: h.URL, shown: h.URL, queue: make(chan event.Event, opts.Queue)}
		if u, err := url.Parse(h.URL); err == nil {
			w.shown = u.Redacted()
		}
		d.hooks = append(d.hooks, w)
		kinds := make([]event.Kind, 0, len(h.Events))
		for _, k := range h.Events {
			if !slices.Contains(kinds, event.Kind(k)) { // listed twice, still posted once
				kinds = append(kinds, event.Kind(k))
			}
		}
		if len(kinds) == 0 {
			kinds = webhookKinds()
		}
		for _, k := range kinds {
			d.byKind[k] = append(d.byKind[k], w)
		}
		d.wg.Add(1)
		go d.run(w, opts)
	}
	return d
}

// Publish implements event.Sink: it queues e for every webhook that wants its kind and never blocks.
func (d *Dispatcher) Publish(e event.Event) {
	ws := d.byKind[e.Kind]
	if len(ws) == 0 {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		for range ws {
			d.metrics.webhookResult(webhookDropped)
		}
		return
	}
	for _, w := range ws {
		d.enqueue(w, e)
	}
}

func (d *Dispatcher) enqueue(w *hookWorker, e event.Event) {
	select {
	case w.queue <- e:
	default:
		d.metrics.webhookResult(webhookDropped)
		if !w.dropping.Swap(true) {
			d.log.Warn("webhook queue full, dropping events", "url", w.shown, "event", e.Kind, "queue", cap(w.queue))
		}
	}
}

// Close stops accepting events and lets the workers deliver what is queued until ctx ends; then it abandons the
// rest (counted as dropped) and waits for the workers to return. It returns ctx.Err() if ctx ended first.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	close(d.quit)

	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("webhook dispatcher: flush interrupted: %w", ctx.Err())
		d.cancelBase()
		<-done
	}
	d.cancelBase()
	return err
}

// run is one webhook's worker; the Dispatcher owns it and Close ends it.
func (d *Dispatcher) run(w *hookWorker, opts DispatcherOptions) {
	defer d.wg.Done()
	for {
		select {
		case e := <-w.queue:
			d.deliver(w, e, opts)
		case <-d.quit:
			for {
				select {
				case e := <-w.queue:
					d.deliver(w, e, opts)
				default:
					return
				}
			}
		}
	}
}

// deliver posts e with bounded retries; the event is counted once as sent or dropped, each failed attempt as
// failed.
func (d *Dispatcher) deliver(w *hookWorker, e event.Event, opts DispatcherOptions) {
	body, err := json.Marshal(e)
	if err != nil {
		d.log.Error("webhook event not encodable", "url", w.shown, "event", e.Kind, "err", err)
		d.metrics.webhookResult(webhookDropped)
		return
	}
	backoff := opts.Backoff
	for attempt := 1; ; attempt++ {
		if d.base.Err() != nil {
			d.metrics.webhookResult(webhookDropped)
			return
		}
		retry, err := d.post(w, body, opts)
		if err == nil {
			d.metrics.webhookResult(webhookSent)
			if w.dropping.Swap(false) {
				d.log.Info("webhook delivering again", "url", w.shown)
			}
			return
		}
		d.metrics.webhookResult(webhookFailed)
		if !retry || attempt >= opts.Attempts {
			d.metrics.webhookResult(webhookDropped)
			if !w.dropping.Swap(true) {
				d.log.Warn("webhook event dropped", "url", w.shown, "event", e.Kind, "key", e.Key, "attempts", attempt, "err", err)
			}
			return
		}
		d.log.Debug("webhook attempt failed, retrying", "url", w.shown, "event", e.Kind, "attempt", attempt, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-d.base.Done():
			t.Stop()
		}
		backoff *= 2
	}
}

// post makes one attempt. retry says whether another attempt could succeed: a 4xx other than 408 and 429 means
// the receiver will refuse this event every time.
func (d *Dispatcher) post(w *hookWorker, body []byte, opts DispatcherOptions) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(d.base, opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("webhook %q: %w", w.shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "msrpgw")
	resp, err := opts.Client.Do(req)
	if err != nil {
		return true, fmt.Errorf("webhook %q: %w", w.shown, err)
	}
	// Read a bounded amount so the connection can be reused without trusting the receiver's body size.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return false, fmt.Errorf("webhook %q answered %s to %s: redirects are not followed, configure the new URL", w.shown, resp.Status, loc)
	}
	return retry, fmt.Errorf("webhook %q answered %s", w.shown, resp.Status)
}

var _ event.Sink = (*Dispatcher)(nil)

package admin

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/msrpgw/msrpgw/event"
)

// maxLabelValues bounds how many distinct label values one counter family takes from event data (codes, reasons).
// Reasons are free text from peers; past the bound they are counted under labelOther so a misbehaving peer cannot
// blow up the series count.
const maxLabelValues = 64

// labelOther is the label value used once a family has seen maxLabelValues distinct values.
const labelOther = "other"

// Webhook delivery results, the values of msrpgw_webhook_events_total's result label.
const (
	webhookSent    = "sent"
	webhookFailed  = "failed"
	webhookDropped = "dropped"
)

// Metrics turns gateway events into Prometheus metrics (it is an event.Sink) and serves the gateway's gauges at
// scrape time. Everything lives on its own registry, so two gateways in one process (tests) do not collide.
type Metrics struct {
	reg *prometheus.Registry

	created      map[string]prometheus.Counter // by origin, pre-resolved for the two origins
	createdVec   *prometheus.CounterVec
	setupFailed  *labelCache[int]
	ended        *labelCache[string]
	refused      *labelCache[int]
	messages     *labelCache[messageLabels]
	delivered    [2]prometheus.Counter  // outcome=delivered, by direction index
	latency      [2]prometheus.Observer // by direction index
	latencyVec   *prometheus.HistogramVec
	setupSeconds prometheus.Observer
	webhook      map[string]prometheus.Counter
}

// messageLabels are the label values of one msrpgw_messages_total series beyond direction.
type messageLabels struct {
	direction event.Direction
	outcome   string
	code      int
	reason    string
}

// NewMetrics creates the metrics on a fresh registry, with the Go runtime and process collectors. stats is called
// at every scrape for the gauges; it may be nil (the gauges are then absent).
func NewMetrics(stats func() Stats) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg}

	m.createdVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_sessions_created_total",
		Help: "Gateway sessions that came up, by origin (message: MESSAGE first; invite: INVITE first).",
	}, []string{"origin"})
	m.created = map[string]prometheus.Counter{
		"message": m.createdVec.WithLabelValues("message"),
		"invite":  m.createdVec.WithLabelValues("invite"),
	}

	setupFailed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_sessions_setup_failed_total",
		Help: "Gateway sessions whose setup failed (E_MSRP_GW_SETUP_FAILED), by SIP code.",
	}, []string{"code"})
	m.setupFailed = newLabelCache(setupFailed, func(c int) []string { return []string{strconv.Itoa(c)} })

	ended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_sessions_ended_total",
		Help: "Gateway sessions that ended, by reason.",
	}, []string{"reason"})
	m.ended = newLabelCache(ended, func(r string) []string { return []string{r} })

	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_requests_refused_total",
		Help: "Requests refused before they became a message (403 untrusted, 503 overload, 400 bad input, ...), by code; code \"connection\": a SIP or MSRP connection refused or closed, no status sent.",
	}, []string{"code"})
	m.refused = newLabelCache(refused, func(c int) []string { return []string{refusedCode(c)} })

	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_messages_total",
		Help: "Messages through the gateway by direction (to_msrp, to_sip) and outcome (delivered, failed, dropped); reason is the code or short reason of a failure or drop.",
	}, []string{"direction", "outcome", "reason"})
	m.messages = newLabelCache(messages, func(l messageLabels) []string {
		return []string{string(l.direction), l.outcome, reasonLabel(l.code, l.reason)}
	})
	directions := [2]event.Direction{event.ToMSRP, event.ToSIP} // in directionIndex order
	for i, d := range directions {
		m.delivered[i] = messages.WithLabelValues(string(d), "delivered", "")
	}

	m.latencyVec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "msrpgw_delivery_latency_seconds",
		Help:    "Time from a message's arrival to its confirmed delivery on the other side, by direction.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"direction"})
	for i, d := range directions {
		m.latency[i] = m.latencyVec.WithLabelValues(string(d))
	}
	setup := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "msrpgw_session_setup_seconds",
		Help:    "Time from the start of a session's setup until it is up.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.setupSeconds = setup

	webhook := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msrpgw_webhook_events_total",
		Help: "Webhook deliveries: sent (2xx), failed (one failed attempt), dropped (queue full, retries exhausted or shut down).",
	}, []string{"result"})
	m.webhook = map[string]prometheus.Counter{
		webhookSent:    webhook.WithLabelValues(webhookSent),
		webhookFailed:  webhook.WithLabelValues(webhookFailed),
		webhookDropped: webhook.WithLabelValues(webhookDropped),
	}

	reg.MustRegister(m.createdVec, setupFailed, ended, refused, messages, m.latencyVec, setup, webhook)
	if stats != nil {
		reg.MustRegister(newStatsCollector(stats))
	}
	return m
}

// directionIndex maps a direction to its pre-resolved children (ToMSRP 0, ToSIP 1).
func directionIndex(d event.Direction) (int, bool) {
	switch d {
	case event.ToMSRP:
		return 0, true
	case event.ToSIP:
		return 1, true
	}
	return 0, false
}

// Registry is the registry /metrics serves; the daemon may add its own collectors to it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Publish implements event.Sink. It is called per message, so the common paths touch only pre-resolved children.
func (m *Metrics) Publish(e event.Event) {
	switch e.Kind {
	case event.SessionStarted:
		if c, ok := m.created[e.Origin]; ok {
			c.Inc()
		} else {
			m.createdVec.WithLabelValues(labelOther).Inc()
		}
		if e.Duration > 0 {
			m.setupSeconds.Observe(e.Duration.Seconds())
		}
	case event.SetupFailed:
		m.setupFailed.get(e.Code).Inc()
	case event.SessionEnded:
		m.ended.get(e.Reason).Inc()
	case event.MessageDelivered:
		i, ok := directionIndex(e.Direction)
		if !ok {
			m.messages.get(messageLabels{direction: e.Direction, outcome: "delivered"}).Inc()
			return
		}
		m.delivered[i].Inc()
		if e.Duration > 0 {
			m.latency[i].Observe(e.Duration.Seconds())
		}
	case event.MessageFailed:
		m.messages.get(messageLabels{direction: e.Direction, outcome: "failed", code: e.Code, reason: codeOrReason(e)}).Inc()
	case event.MessageDropped:
		m.messages.get(messageLabels{direction: e.Direction, outcome: "dropped", code: e.Code, reason: codeOrReason(e)}).Inc()
	case event.RequestRefused:
		m.refused.get(e.Code).Inc()
	}
}

// refusedCode is the code label of a refusal: the status sent, or "connection" for a connection refused over a
// bound or closed for a frame that cannot be delimited, where no status is sent (event code 0).
func refusedCode(code int) string {
	if code == 0 {
		return "connection"
	}
	return strconv.Itoa(code)
}

// codeOrReason keeps only what the label uses, so that events differing in free text but sharing a code hit
// the same cached child.
func codeOrReason(e event.Event) string {
	if e.Code != 0 {
		return ""
	}
	return e.Reason
}

func reasonLabel(code int, reason string) string {
	if code != 0 {
		return strconv.Itoa(code)
	}
	return reason
}

// webhookResult counts one webhook delivery result; nil-safe so a Dispatcher can run without metrics.
func (m *Metrics) webhookResult(result string) {
	if m == nil {
		return
	}
	m.webhook[result].Inc()
}

// labelCache resolves label values to a counter child once and then serves it from a map, so the per-event path
// does not build label slices or hash label strings inside client_golang. It also bounds cardinality.
type labelCache[K comparable] struct {
	vec    *prometheus.CounterVec
	labels func(K) []string

	mu       sync.RWMutex
	children map[K]prometheus.Counter
	others   map[string]prometheus.Counter // overflow children: last label replaced by labelOther
}

func newLabelCache[K comparable](vec *prometheus.CounterVec, labels func(K) []string) *labelCache[K] {
	return &labelCache[K]{vec: vec, labels: labels, children: make(map[K]prometheus.Counter)}
}

func (c *labelCache[K]) get(k K) prometheus.Counter {
	c.mu.RLock()
	ch, ok := c.children[k]
	c.mu.RUnlock()
	if ok {
		return ch
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.children[k]; ok {
		return ch
	}
	lv := c.labels(k)
	if len(c.children) >= maxLabelValues {
		// Only the last label (code, reason) is unbounded; the others keep their values.
		lv[len(lv)-1] = labelOther
		name := strings.Join(lv, "\x00")
		if ch, ok := c.others[name]; ok {
			return ch
		}
		if c.others == nil {
			c.others = make(map[string]prometheus.Counter)
		}
		ch = c.vec.WithLabelValues(lv...)
		c.others[name] = ch
		return ch
	}
	ch = c.vec.WithLabelValues(lv...)
	c.children[k] = ch
	return ch
}

// statsCollector reads the gateway's gauges at scrape time, so they are never stale and cost nothing between
// scrapes.
type statsCollector struct {
	stats  func() Stats
	active *prometheus.Desc
	queue  *prometheus.Desc
	conns  *prometheus.Desc
}

func newStatsCollector(stats func() Stats) *statsCollector {
	return &statsCollector{
		stats:  stats,
		active: prometheus.NewDesc("msrpgw_sessions_active", "Gateway sessions now, by state (setting-up, up, ending).", []string{"state"}, nil),
		queue:  prometheus.NewDesc("msrpgw_queue_depth", "Messages queued in the gateway in total, waiting for a session to come up or for their turn.", nil, nil),
		conns:  prometheus.NewDesc("msrpgw_msrp_connections", "Open MSRP connections.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.queue
	ch <- c.conns
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, st := range []string{StateSettingUp, StateUp, StateEnding} {
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(s.SessionsByState[st]), st)
	}
	for st, n := range s.SessionsByState {
		if st != StateSettingUp && st != StateUp && st != StateEnding {
			ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(n), st)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.MSRPConns))
}

var _ event.Sink = (*Metrics)(nil)

package admin

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/msrpgw/msrpgw/event"
)

// publishSequence publishes what a gateway would report for: two MESSAGE-first sessions and one INVITE-first
// session coming up, one setup failing with 486 and one timing out, messages delivered both ways, failures with
// codes and a drop without one, refused requests, and two sessions ending.
func publishSequence(m *Metrics) {
	m.Publish(event.Event{Kind: event.SessionStarted, Origin: "message", Duration: 30 * time.Millisecond})
	m.Publish(event.Event{Kind: event.SessionStarted, Origin: "message", Duration: 2 * time.Second})
	m.Publish(event.Event{Kind: event.SessionStarted, Origin: "invite", Duration: 4 * time.Millisecond})
	m.Publish(event.Event{Kind: event.SetupFailed, Code: 486, Reason: "Busy Here"})
	m.Publish(event.Event{Kind: event.SetupFailed, Code: 408, Reason: "Request Timeout"})
	m.Publish(event.Event{Kind: event.SetupFailed, Code: 486, Reason: "Busy Here"})
	for range 5 {
		m.Publish(event.Event{Kind: event.MessageDelivered, Direction: event.ToMSRP, Duration: 20 * time.Millisecond})
	}
	for range 3 {
		m.Publish(event.Event{Kind: event.MessageDelivered, Direction: event.ToSIP, Duration: 200 * time.Millisecond})
	}
	m.Publish(event.Event{Kind: event.MessageFailed, Direction: event.ToMSRP, Code: 480, Reason: "MSRP connection failed"})
	m.Publish(event.Event{Kind: event.MessageFailed, Direction: event.ToMSRP, Code: 480, Reason: "Temporarily Unavailable"})
	m.Publish(event.Event{Kind: event.MessageFailed, Direction: event.ToSIP, Code: 408, Reason: "Request Timeout"})
	m.Publish(event.Event{Kind: event.MessageDropped, Direction: event.ToSIP, Reason: "iscomposing"})
	m.Publish(event.Event{Kind: event.MessageDropped, Direction: event.ToSIP, Reason: "iscomposing"})
	m.Publish(event.Event{Kind: event.RequestRefused, Code: 403})
	m.Publish(event.Event{Kind: event.RequestRefused, Reason: "sip: connection over limits.max_sip_conns"})
	m.Publish(event.Event{Kind: event.RequestRefused, Code: 503})
	m.Publish(event.Event{Kind: event.RequestRefused, Code: 503})
	m.Publish(event.Event{Kind: event.SessionEnded, Reason: "bye"})
	m.Publish(event.Event{Kind: event.SessionEnded, Reason: "message_timeout"})
}

func TestMetricsAfterSequence(t *testing.T) {
	gw := newFakeGateway()
	gw.stats = Stats{SessionsByState: map[string]int{StateUp: 2, StateSettingUp: 1}, Queued: 4, MSRPConns: 3}
	m := NewMetrics(gw.Stats)
	publishSequence(m)

	want := `
# HELP msrpgw_sessions_created_total Gateway sessions that came up, by origin (message: MESSAGE first; invite: INVITE first).
# TYPE msrpgw_sessions_created_total counter
msrpgw_sessions_created_total{origin="invite"} 1
msrpgw_sessions_created_total{origin="message"} 2
# HELP msrpgw_sessions_setup_failed_total Gateway sessions whose setup failed (E_MSRP_GW_SETUP_FAILED), by SIP code.
# TYPE msrpgw_sessions_setup_failed_total counter
msrpgw_sessions_setup_failed_total{code="408"} 1
msrpgw_sessions_setup_failed_total{code="486"} 2
# HELP msrpgw_sessions_ended_total Gateway sessions that ended, by reason.
# TYPE msrpgw_sessions_ended_total counter
msrpgw_sessions_ended_total{reason="bye"} 1
msrpgw_sessions_ended_total{reason="message_timeout"} 1
# HELP msrpgw_messages_total Messages through the gateway by direction (to_msrp, to_sip) and outcome (delivered, failed, dropped); reason is the code or short reason of a failure or drop.
# TYPE msrpgw_messages_total counter
msrpgw_messages_total{direction="to_msrp",outcome="delivered",reason=""} 5
msrpgw_messages_total{direction="to_msrp",outcome="failed",reason="480"} 2
msrpgw_messages_total{direction="to_sip",outcome="delivered",reason=""} 3
msrpgw_messages_total{direction="to_sip",outcome="dropped",reason="iscomposing"} 2
msrpgw_messages_total{direction="to_sip",outcome="failed",reason="408"} 1
# HELP msrpgw_requests_refused_total Requests refused before they became a message (403 untrusted, 503 overload, 400 bad input, ...), by code; code "connection": a SIP or MSRP connection refused or closed, no status sent.
# TYPE msrpgw_requests_refused_total counter
msrpgw_requests_refused_total{code="connection"} 1
msrpgw_requests_refused_total{code="403"} 1
msrpgw_requests_refused_total{code="503"} 2
# HELP msrpgw_sessions_active Gateway sessions now, by state (setting-up, up, ending).
# TYPE msrpgw_sessions_active gauge
msrpgw_sessions_active{state="ending"} 0
msrpgw_sessions_active{state="setting-up"} 1
msrpgw_sessions_active{state="up"} 2
# HELP msrpgw_queue_depth Messages queued in the gateway in total, waiting for a session to come up or for their turn.
# TYPE msrpgw_queue_depth gauge
msrpgw_queue_depth 4
# HELP msrpgw_msrp_connections Open MSRP connections.
# TYPE msrpgw_msrp_connections gauge
msrpgw_msrp_connections 3
`
	names := []string{"msrpgw_sessions_created_total", "msrpgw_sessions_setup_failed_total", "msrpgw_sessions_ended_total",
		"msrpgw_messages_total", "msrpgw_requests_refused_total", "msrpgw_sessions_active", "msrpgw_queue_depth", "msrpgw_msrp_connections"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}

	// Histograms: counts and sums from the known durations.
	if n := testutil.CollectAndCount(m.latencyVec, "msrpgw_delivery_latency_seconds"); n != 2 {
		t.Errorf("latency series: %d, want one per direction", n)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := map[string][2]float64{} // name{direction} -> count, sum
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			if h := mm.GetHistogram(); h != nil && strings.HasPrefix(mf.GetName(), "msrpgw_") {
				name := mf.GetName()
				for _, lp := range mm.GetLabel() {
					name += "{" + lp.GetValue() + "}"
				}
				hist[name] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
			}
		}
	}
	wantHist := map[string][2]float64{
		"msrpgw_session_setup_seconds":             {3, 2.034},
		"msrpgw_delivery_latency_seconds{to_msrp}": {5, 0.1},
		"msrpgw_delivery_latency_seconds{to_sip}":  {3, 0.6},
	}
	for name, w := range wantHist {
		g, ok := hist[name]
		if !ok || g[0] != w[0] || fmt.Sprintf("%.6f", g[1]) != fmt.Sprintf("%.6f", w[1]) {
			t.Errorf("%s: count,sum %v, want %v", name, g, w)
		}
	}

	// Go runtime and process metrics are there too.
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if c, err := testutil.GatherAndCount(m.Registry(), n); err != nil || c == 0 {
			t.Errorf("%s missing (%d, %v)", n, c, err)
		}
	}
}

func TestMetricsLabelCardinalityIsBounded(t *testing.T) {
	m := NewMetrics(nil)
	for i := range 10 * maxLabelValues {
		m.Publish(event.Event{Kind: event.SessionEnded, Reason: fmt.Sprintf("free text %d", i)})
		m.Publish(event.Event{Kind: event.MessageFailed, Direction: event.ToSIP, Reason: fmt.Sprintf("peer said %d", i)})
	}
	if n := testutil.CollectAndCount(m.ended.vec); n > maxLabelValues+1 {
		t.Errorf("msrpgw_sessions_ended_total has %d series, want at most %d", n, maxLabelValues+1)
	}
	if n := testutil.CollectAndCount(m.messages.vec); n > maxLabelValues+4 {
		t.Errorf("msrpgw_messages_total has %d series, want bounded", n)
	}
	// Nothing is lost: the overflow is counted under "other".
	if v := testutil.ToFloat64(m.ended.vec.WithLabelValues(labelOther)); v != float64(9*maxLabelValues) {
		t.Errorf("ended{reason=other} = %v, want %d", v, 9*maxLabelValues)
	}
	// The delivered children are resolved outside the cache, so it holds maxLabelValues distinct failures.
	if v := testutil.ToFloat64(m.messages.vec.WithLabelValues("to_sip", "failed", labelOther)); v != float64(9*maxLabelValues) {
		t.Errorf("messages{to_sip,failed,other} = %v, want %d", v, 9*maxLabelValues)
	}
}

func TestMetricsUnknownLabelsDoNotPanic(t *testing.T) {
	m := NewMetrics(func() Stats { return Stats{SessionsByState: map[string]int{"parked": 1}} })
	m.Publish(event.Event{Kind: event.SessionStarted, Origin: "weird"})
	m.Publish(event.Event{Kind: event.MessageDelivered, Direction: "sideways"})
	m.Publish(event.Event{Kind: "future_kind"})
	if v := testutil.ToFloat64(m.createdVec.WithLabelValues(labelOther)); v != 1 {
		t.Errorf("created{origin=other} = %v, want 1", v)
	}
	if c, err := testutil.GatherAndCount(m.Registry(), "msrpgw_sessions_active"); err != nil || c != 4 {
		t.Errorf("sessions_active series %d (%v), want the 3 known states plus the extra one", c, err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	gw := newFakeGateway()
	gw.stats = Stats{SessionsByState: map[string]int{StateUp: 7}, Queued: 1}
	m := NewMetrics(gw.Stats)
	publishSequence(m)
	srv := newTestServer(t, gw, m, Options{})
	status, _, body := do(t, "GET", srv.URL+"/metrics", "", "")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	for _, line := range []string{
		`msrpgw_sessions_active{state="up"} 7`,
		`msrpgw_messages_total{direction="to_msrp",outcome="delivered",reason=""} 5`,
		`msrpgw_webhook_events_total{result="dropped"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func BenchmarkMetricsPublishDelivered(b *testing.B) {
	m := NewMetrics(nil)
	e := event.Event{Kind: event.MessageDelivered, Direction: event.ToMSRP, Duration: 15 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.Publish(e)
	}
}

func BenchmarkMetricsPublishFailed(b *testing.B) {
	m := NewMetrics(nil)
	e := event.Event{Kind: event.MessageFailed, Direction: event.ToSIP, Code: 408, Reason: "Request Timeout"}
	b.ReportAllocs()
	for b.Loop() {
		m.Publish(e)
	}
}

func TestMetricsConcurrentPublish(t *testing.T) {
	m := NewMetrics(nil)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.Publish(event.Event{Kind: event.MessageDelivered, Direction: event.ToSIP})
				m.Publish(event.Event{Kind: event.MessageFailed, Direction: event.ToMSRP, Code: 400 + (w+i)%10})
				m.Publish(event.Event{Kind: event.SessionEnded, Reason: "bye"})
			}
		})
	}
	wg.Wait()
	if v := testutil.ToFloat64(m.delivered[1]); v != workers*each {
		t.Errorf("delivered %v, want %d", v, workers*each)
	}
	var failed float64
	for c := range 10 {
		failed += testutil.ToFloat64(m.messages.vec.WithLabelValues("to_msrp", "failed", fmt.Sprint(400+c)))
	}
	if failed != workers*each {
		t.Errorf("failed %v, want %d", failed, workers*each)
	}
	if v := testutil.ToFloat64(m.ended.vec.WithLabelValues("bye")); v != workers*each {
		t.Errorf("ended %v, want %d", v, workers*each)
	}
}

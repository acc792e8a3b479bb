package main

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
)

func TestBodyRoundTrip(t *testing.T) {
	in := stamp{flow: msrpToMsg, session: 7, seq: 123456, sentNs: 987654321}
	out, err := parseBody([]byte(in.format()))
	if err != nil || out != in {
		t.Fatalf("parseBody(format(%+v)) = %+v, %v", in, out, err)
	}
	for _, b := range []string{"", "hello", "msrpgw-load x 1 2 3", "msrpgw-load msg2msrp -1 2 3", "msrpgw-load msg2msrp 1 2",
		"Message not delivered (408 Request Timeout): msrpgw-load msg2msrp 1 2 3"} {
		if _, err := parseBody([]byte(b)); !errors.Is(err, errNotOurs) {
			t.Errorf("parseBody(%q) = %v, want errNotOurs", b, err)
		}
	}
}

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(stamp{flow: msgToMSRP, session: 1, seq: 2, sentNs: 3}.format()))
	f.Add([]byte("msrpgw-load warmup 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseBody(b)
		if err != nil {
			return
		}
		again, err := parseBody([]byte(s.format()))
		if err != nil || again != s {
			t.Fatalf("%q parsed as %+v, which formats back to %+v, %v", b, s, again, err)
		}
	})
}

// TestCounting drives flowStats directly: duplicates, reorders and losses by the definitions in the report.
func TestCounting(t *testing.T) {
	f := newFlowStats(2)
	for seq := range int64(6) {
		f.sent(0, seq, 0)
	}
	for _, seq := range []int64{0, 2, 1, 2, 4} { // 1 late (reordered), 2 twice, 3 and 5 never
		f.received(stamp{flow: msgToMSRP, session: 0, seq: seq}, 1, -1)
	}
	f.received(stamp{flow: msgToMSRP, session: 9, seq: 0}, 1, -1) // no such session
	r := f.report()
	if r.Delivered != 4 || r.Duplicated != 1 || r.Reordered != 1 || r.Lost != 2 || r.Foreign != 1 {
		t.Errorf("%+v", r)
	}
}

// A flow is settled (its drain can end) once every message was delivered or refused, each counted once in
// whichever order its delivery and its failed final come.
func TestSettledCountsEachMessageOnce(t *testing.T) {
	f := newFlowStats(1)
	for seq := range int64(3) {
		f.sent(0, seq, 0)
	}
	f.received(stamp{flow: msgToMSRP, seq: 0}, 1, -1)
	f.final(0, 0, 200)
	f.received(stamp{flow: msgToMSRP, seq: 1}, 1, -1) // delivered, then refused
	f.final(0, 1, 500)
	f.final(0, 2, 200)
	if f.settled() {
		t.Fatal("settled with message 2 neither delivered nor refused")
	}
	g := newFlowStats(1)
	for seq := range int64(2) {
		g.sent(0, seq, 0)
	}
	g.final(0, 0, 0) // refused (no final), then delivered
	g.received(stamp{flow: msgToMSRP, seq: 0}, 1, -1)
	g.final(0, 1, 200)
	if g.settled() {
		t.Fatal("settled with message 1 neither delivered nor refused")
	}
	g.final(0, 1, 408) // a second final for it does not count twice either
	if !g.settled() {
		t.Fatal("not settled with every message delivered or refused")
	}
}

// Both rates are intervals over their span: N messages sent 1/R apart and all delivered with the same
// latency report R twice; delivered twice as far apart, half of it.
func TestRates(t *testing.T) {
	const n, rate = 50, 200.0
	for _, tc := range []struct {
		name    string
		stretch int // deliveries are this many times as far apart as the sends
		want    float64
	}{
		{"keeping up", 1, rate},
		{"falling behind", 2, rate / 2},
	} {
		f := newFlowStats(1)
		for i := range n {
			sent := time.Duration(i) * time.Second / rate
			f.sent(0, int64(i), sent)
			f.received(stamp{flow: msgToMSRP, seq: int64(i), sentNs: int64(sent)}, 3*time.Millisecond+sent*time.Duration(tc.stretch), -1)
		}
		r := f.report()
		if math.Abs(r.AchievedRate-rate) > 1e-9*rate || math.Abs(r.DeliveredRate-tc.want) > 1e-9*rate {
			t.Errorf("%s: achieved %g delivered %g /s; want %g and %g", tc.name, r.AchievedRate, r.DeliveredRate, rate, tc.want)
		}
	}
	// One message is no rate.
	f := newFlowStats(1)
	f.sent(0, 0, time.Second)
	f.received(stamp{flow: msgToMSRP}, 2*time.Second, -1)
	if r := f.report(); r.AchievedRate != 0 || r.DeliveredRate != 0 {
		t.Errorf("one message: achieved %g delivered %g, want 0 and 0", r.AchievedRate, r.DeliveredRate)
	}
}

func TestSummarise(t *testing.T) {
	var ns []int64
	for i := int64(1); i <= 100; i++ {
		ns = append(ns, i*1e6)
	}
	l := summarise(ns)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.N != 100 {
		t.Errorf("%+v", l)
	}
}

func TestParseGoroutines(t *testing.T) {
	body := []byte("# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_threads 9\n")
	if n, err := parseGoroutines(body); err != nil || n != 42 {
		t.Fatalf("parseGoroutines: %d, %v; want 42", n, err)
	}
	if _, err := parseGoroutines([]byte("go_threads 9\n")); err == nil {
		t.Fatal("no go_goroutines sample, and no error")
	}
	if _, err := parseGoroutines([]byte("go_goroutines many\n")); err == nil {
		t.Fatal("a sample that is no number, and no error")
	}
}

// The wire clock keeps the first write of each MESSAGE→MSRP request and ignores everything else it sees.
func TestWireClock(t *testing.T) {
	w := newWireClock()
	msg := func(f flowID, session int, seq int64) []byte {
		return []byte("MESSAGE sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 30\r\n\r\n" +
			stamp{flow: f, session: session, seq: seq, sentNs: 5}.format())
	}
	t0 := time.Unix(1000, 0)
	w.wrote(msg(msgToMSRP, 1, 7), t0)
	w.wrote(msg(msgToMSRP, 1, 7), t0.Add(time.Second)) // a retransmission
	w.wrote(msg(msrpToMsg, 1, 8), t0)                  // another flow
	w.wrote([]byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), t0)
	if d, ok := w.latency(stamp{flow: msgToMSRP, session: 1, seq: 7}, t0.Add(300*time.Microsecond)); !ok || d != 300*time.Microsecond {
		t.Fatalf("latency = %v, %v; want 300µs from the first write", d, ok)
	}
	if _, ok := w.latency(stamp{flow: msgToMSRP, session: 1, seq: 7}, t0); ok {
		t.Fatal("a message's send time was used twice")
	}
	if _, ok := w.latency(stamp{flow: msgToMSRP, session: 1, seq: 8}, t0); ok {
		t.Fatal("a MSRP→MESSAGE datagram was taken for a MESSAGE→MSRP request")
	}
	w.wrote(msg(msgToMSRP, 2, 0), t0)
	if _, ok := w.latency(stamp{flow: msgToMSRP, session: 2, seq: 0}, time.Time{}); ok {
		t.Fatal("a latency without a receive time")
	}
	if len(w.sent) != 0 {
		t.Fatalf("%d send times left behind", len(w.sent))
	}
}

// Shards interleave: at 4,000/s over four shards, shard k starts k×250 µs in, and a second flow half a period
// after the first.
func TestShardOffset(t *testing.T) {
	for _, tc := range []struct {
		k, fi, flows int
		rate         float64
		want         time.Duration
	}{
		{0, 0, 1, 4000, 0},
		{1, 0, 1, 4000, 250 * time.Microsecond},
		{3, 0, 1, 4000, 750 * time.Microsecond},
		{0, 1, 2, 4000, 125 * time.Microsecond},
		{2, 1, 2, 4000, 625 * time.Microsecond},
		{3, 0, 1, 0, 0}, // closed loop: no schedule
	} {
		if got := shardOffset(tc.k, tc.fi, tc.flows, tc.rate); got != tc.want {
			t.Errorf("shardOffset(%d, %d, %d, %g) = %v, want %v", tc.k, tc.fi, tc.flows, tc.rate, got, tc.want)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	wait, slices, err := parseSchedstat([]byte("2497330000 960144556 40543\n"))
	if err != nil || wait != 960144556*time.Nanosecond || slices != 40543 {
		t.Errorf("got %v %d %v", wait, slices, err)
	}
	for _, bad := range []string{"", "1 2", "1 x 3", "1 2 y"} {
		if _, _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseCPUTimes(t *testing.T) {
	// A real first line: guest time (after steal) is already in user and is not added again.
	c, err := parseCPUTimes([]byte("cpu  1424479 214915 512240 5078926 9198 0 90610 42798 7 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"))
	if err != nil || c.total != 1424479+214915+512240+5078926+9198+0+90610+42798 || c.steal != 42798 {
		t.Errorf("got %+v %v", c, err)
	}
	for _, bad := range []string{"", "cpu 1 2 3 4 5 6 7", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 x 6 7 8"} {
		if _, err := parseCPUTimes([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	a, b := cpuTimes{total: 1000, steal: 10}, cpuTimes{total: 1400, steal: 30}
	if p := stealPercent(a, b); p == nil || *p != 5 {
		t.Errorf("steal between %+v and %+v: %v, want 5 %%", a, b, p)
	}
	if p := stealPercent(b, b); p != nil {
		t.Errorf("no time passed: %v, want nil", *p)
	}
}

// A message delivered on another session than the one stamped in it is the gateway's mistake: lost for its
// own session, counted among the other messages, never delivered.
func TestMisroutedMessagesAreNotDelivered(t *testing.T) {
	l := &loader{start: time.Now(), flows: map[flowID]*flowStats{msgToMSRP: newFlowStats(2), msrpToMsg: newFlowStats(2)}, wire: newWireClock()}
	l.flows[msgToMSRP].sent(0, 0, 0)
	l.msrpReceived(&chat{idx: 1}, &msrp.Incoming{Body: []byte(stamp{flow: msgToMSRP, session: 0}.format())})
	l.flows[msrpToMsg].sent(0, 0, 0)
	var ruri sip.Uri
	if err := sip.ParseUri("sip:lp1@127.0.0.1:5999", &ruri); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	req.SetBody([]byte(stamp{flow: msrpToMsg, session: 0}.format()))
	l.pageReceived(req)
	for _, f := range []flowID{msgToMSRP, msrpToMsg} {
		if r := l.flows[f].report(); r.Delivered != 0 || r.Lost != 1 || r.Foreign != 1 || r.Misrouted != 1 {
			t.Errorf("%s: delivered %d lost %d other %d misrouted %d, want 0, 1, 1, 1", f, r.Delivered, r.Lost, r.Foreign, r.Misrouted)
		}
	}
	// Where they belong, they are delivered.
	l.msrpReceived(&chat{idx: 0}, &msrp.Incoming{Body: []byte(stamp{flow: msgToMSRP, session: 0}.format())})
	ruri.User = "lp0"
	req = sip.NewRequest(sip.MESSAGE, ruri)
	req.SetBody([]byte(stamp{flow: msrpToMsg, session: 0}.format()))
	l.pageReceived(req)
	for _, f := range []flowID{msgToMSRP, msrpToMsg} {
		r := l.flows[f].report()
		if r.Delivered != 1 || r.Lost != 0 {
			t.Errorf("%s, after the right delivery: delivered %d lost %d, want 1, 0", f, r.Delivered, r.Lost)
		}
		// Delivered where it belongs, and once more elsewhere: still a fault of the run.
		rep := &Report{Setups: SetupReport{Count: 2, Byes: 2}, Flows: map[string]FlowReport{string(f): r}}
		if got := strings.Join(rep.faults(), "; "); !strings.Contains(got, "1 delivered on another session") {
			t.Errorf("%s: faults %q, want the misrouted copy among them", f, got)
		}
	}
}

// A completed run is judged by everything it counted, not only its losses: each fault below alone makes it
// not clean (exit status 3), with a line that says what.
func TestFaults(t *testing.T) {
	clean := func() *Report {
		return &Report{
			Setups: SetupReport{Count: 2, Byes: 2},
			Flows: map[string]FlowReport{
				"msg2msrp": {Sent: 10, Delivered: 10, Responses: map[string]int64{"200": 9, "202": 1}},
				"msrp2msg": {Sent: 10, Delivered: 10, Responses: map[string]int64{"200": 10}, Foreign: 3},
			},
		}
	}
	if f := clean().faults(); len(f) != 0 {
		t.Fatalf("clean report (other_received is the gateway's own traffic, 202 is 2xx): %q", f)
	}
	flow := func(r *Report, name string, change func(*FlowReport)) {
		f := r.Flows[name]
		change(&f)
		r.Flows[name] = f
	}
	cases := []struct {
		change func(*Report)
		want   string
	}{
		{func(r *Report) { r.Setups.Failures, r.Setups.Why = 1, map[string]int64{"INVITE 486": 1} }, "sessions: 1 of 3 setups failed map[INVITE 486:1]"},
		{func(r *Report) { r.Setups.ByeFailure = 1 }, "sessions: 1 BYEs failed"},
		{func(r *Report) { r.Churn = &SetupReport{Count: 4, Failures: 1, Why: map[string]int64{"timeout": 1}} }, "churn: 1 of 5 setups failed map[timeout:1]"},
		{func(r *Report) { r.Churn = &SetupReport{Count: 4, ByeFailure: 2} }, "churn: 2 BYEs failed"},
		{func(r *Report) { r.ByesFromGateway = 1 }, "the gateway ended 1 sessions (BYE)"},
		{func(r *Report) { r.ConnLost = 1 }, "1 MSRP connections lost"},
		{func(r *Report) { flow(r, "msg2msrp", func(f *FlowReport) { f.Delivered, f.Lost = 9, 1 }) }, "msg2msrp: 1 lost of 10 sent"},
		{func(r *Report) { flow(r, "msrp2msg", func(f *FlowReport) { f.Duplicated = 1 }) }, "msrp2msg: 1 duplicated of 10 sent"},
		{func(r *Report) { flow(r, "msrp2msg", func(f *FlowReport) { f.Reordered = 4 }) }, "msrp2msg: 4 reordered of 10 sent"},
		{func(r *Report) { flow(r, "msg2msrp", func(f *FlowReport) { f.SendErrors = 2 }) }, "msg2msrp: 2 not sent (send errors) of 10 sent"},
		{func(r *Report) { flow(r, "msg2msrp", func(f *FlowReport) { f.NoResponse = 1 }) }, "msg2msrp: 1 without a final response of 10 sent"},
		{func(r *Report) {
			flow(r, "msrp2msg", func(f *FlowReport) { f.Responses = map[string]int64{"200": 8, "408": 1, "error": 1} })
		}, "msrp2msg: 2 answered with a failure of 10 sent"},
	}
	for _, tc := range cases {
		r := clean()
		tc.change(r)
		if f := r.faults(); len(f) != 1 || f[0] != tc.want {
			t.Errorf("faults %q, want [%q]", f, tc.want)
		}
	}
}

// A delivered stamp whose sequence number the tool never sent (a body the gateway mangled) is a fault of its
// own, not a delivery: it hides no loss.
func TestNeverSentSequenceHidesNoLoss(t *testing.T) {
	f := newFlowStats(1)
	for seq := range int64(3) { // seq 0, 1, 2 of session 0
		f.sent(0, seq, 0)
		f.final(0, seq, 200)
	}
	for _, seq := range []int64{0, 1, 7} { // 2 never arrives; 7 was never sent
		f.received(stamp{flow: msgToMSRP, session: 0, seq: seq}, 1, -1)
	}
	r := f.report()
	rep := &Report{Setups: SetupReport{Count: 1, Byes: 1}, Flows: map[string]FlowReport{"msg2msrp": r}}
	if r.Delivered != 2 || r.Lost != 1 || r.NeverSent != 1 || len(rep.faults()) == 0 {
		t.Errorf("sent seq 0..2, received 0, 1 and 7 (never sent): delivered %d lost %d never sent %d, faults %q; want 2, 1, 1 and a fault",
			r.Delivered, r.Lost, r.NeverSent, rep.faults())
	}
}

// A stamp with a sequence number far beyond anything sent is counted as never sent, without growing a bitset
// to its size.
func TestHugeSequenceIsNeverSent(t *testing.T) {
	st, err := parseBody([]byte("msrpgw-load msg2msrp 0 9223372036854775807 0"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFlowStats(1)
	f.sent(0, 0, 0)
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("received(%+v) panicked: %v", st, p)
		}
	}()
	f.received(st, 1, -1)
	if r := f.report(); r.NeverSent != 1 || r.Delivered != 0 || r.Lost != 1 {
		t.Errorf("seq 0 sent, seq %d received: never sent %d, delivered %d, lost %d; want 1, 0, 1", st.seq, r.NeverSent, r.Delivered, r.Lost)
	}
}

// A message delivered where it belongs and again at the other side of the gateway (a MESSAGE→MSRP message
// back at a phone, an MSRP→MESSAGE message back out on an MSRP session) is delivered on a wrong session: a
// fault, in either mode.
func TestCrossFlowDeliveryIsAFault(t *testing.T) {
	for _, mode := range []string{"msg2msrp", "both"} {
		t.Run(mode, func(t *testing.T) {
			l := &loader{start: time.Now(), flows: map[flowID]*flowStats{msgToMSRP: newFlowStats(1)}, wire: newWireClock()}
			if mode == "both" {
				l.flows[msrpToMsg] = newFlowStats(1)
			}
			body := []byte(stamp{flow: msgToMSRP, session: 0, seq: 0}.format())
			l.flows[msgToMSRP].sent(0, 0, 0)
			l.flows[msgToMSRP].final(0, 0, 200)
			l.msrpReceived(&chat{idx: 0}, &msrp.Incoming{Body: body}) // where it belongs
			var ruri sip.Uri
			if err := sip.ParseUri("sip:lp0@127.0.0.1:5999", &ruri); err != nil {
				t.Fatal(err)
			}
			req := sip.NewRequest(sip.MESSAGE, ruri)
			req.SetBody(body)
			l.pageReceived(req) // and back to the phone that sent it
			rep := &Report{Setups: SetupReport{Count: 1, Byes: 1}, Flows: map[string]FlowReport{}}
			for f, s := range l.flows {
				rep.Flows[string(f)] = s.report()
			}
			if faults := rep.faults(); len(faults) == 0 {
				t.Errorf("msg2msrp message delivered on MSRP session 0 and again to phone lp0: flows %+v judged clean", rep.Flows)
			}
		})
	}
	t.Run("msrp2msg", func(t *testing.T) {
		l := &loader{start: time.Now(), flows: map[flowID]*flowStats{msrpToMsg: newFlowStats(1)}, wire: newWireClock()}
		body := []byte(stamp{flow: msrpToMsg, session: 0, seq: 0}.format())
		l.flows[msrpToMsg].sent(0, 0, 0)
		l.flows[msrpToMsg].final(0, 0, 200)
		var ruri sip.Uri
		if err := sip.ParseUri("sip:lp0@127.0.0.1:5999", &ruri); err != nil {
			t.Fatal(err)
		}
		req := sip.NewRequest(sip.MESSAGE, ruri)
		req.SetBody(body)
		l.pageReceived(req)                                       // where it belongs
		l.msrpReceived(&chat{idx: 0}, &msrp.Incoming{Body: body}) // and back out to the client that sent it
		r := l.flows[msrpToMsg].report()
		rep := &Report{Setups: SetupReport{Count: 1, Byes: 1}, Flows: map[string]FlowReport{"msrp2msg": r}}
		if faults := rep.faults(); len(faults) == 0 {
			t.Errorf("msrp2msg message delivered to phone lp0 and again on MSRP session 0: %+v judged clean", r)
		}
	})
}

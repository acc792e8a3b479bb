package main

import (
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"time"
)

// flowID names a direction through the gateway.
type flowID string

const (
	msgToMSRP flowID = "msg2msrp" // page-mode MESSAGE in, MSRP SEND out
	msrpToMsg flowID = "msrp2msg" // MSRP SEND in, page-mode MESSAGE out
	warmUp    flowID = "warmup"   // the MESSAGE that sets a session up in -setup message
)

// maxLatencySamples bounds the memory the latency samples take (8 bytes each).
const maxLatencySamples = 20_000_000

// recvState is what the tool knows about one session of a flow.
type recvState struct {
	sent    []uint64 // bitset of sequence numbers sent
	seen    []uint64 // bitset of sequence numbers received
	refused []uint64 // bitset of sequence numbers whose final response was a failure
	max     int64    // highest sequence number received, -1 before the first
	// With arrival order (flowStats.byArrival): the sequence numbers that reached the tool's socket, and the
	// highest of them.
	arrived    []uint64
	arrivedMax int64
}

// maxAhead bounds how far above the messages sent so far a received sequence number may be: one the tool
// cannot have sent yet (a mangled body) is counted as never sent, without growing a bitset to its size.
const maxAhead = 1 << 16

func hasBit(bits []uint64, seq int64) bool {
	word := int(seq / 64)
	return word < len(bits) && bits[word]&(1<<uint(seq%64)) != 0
}

func setBit(bits *[]uint64, seq int64) {
	word := int(seq / 64)
	if word >= len(*bits) {
		*bits = append(*bits, make([]uint64, word+1-len(*bits))...)
	}
	(*bits)[word] |= 1 << uint(seq%64)
}

// flowStats counts one direction. The sender side calls sent/final, the receiving side received.
type flowStats struct {
	mu       sync.Mutex
	sentN    int64
	sendErrs int64
	finals   map[string]int64 // final response code (or "error") -> count
	finalN   int64
	// doneN counts the messages that were delivered or refused (a final that is not 2xx, or none but an
	// error), each once: a message can be both, and the drain must not count it twice.
	doneN     int64
	delivered int64
	dups      int64
	reordered int64
	neverSent int64 // received stamps with a sequence number beyond any sent (more are found in report)
	foreign   int64 // messages received that do not carry a stamp of this flow
	misrouted int64 // messages of this flow received on another session than the one stamped in them
	recv      []recvState
	lat       []int64
	wire      []int64 // wire latencies, where both ends are known (wire.go)
	firstSend time.Duration
	lastSend  time.Duration
	maxLate   time.Duration // the most a message was sent after it was due (open loop)
	firstRecv time.Duration
	lastRecv  time.Duration
	// byArrival: reorders are counted in the order messages reached the tool's socket (arrived), not in the
	// order its handlers ran: sipgo runs each request's handler on a goroutine of its own.
	byArrival bool
}

func newFlowStats(sessions int) *flowStats {
	f := &flowStats{finals: make(map[string]int64), recv: make([]recvState, sessions)}
	for i := range f.recv {
		f.recv[i].max, f.recv[i].arrivedMax = -1, -1
	}
	return f
}

// sent records request seq of session written to the wire at t (since the run's start).
func (f *flowStats) sent(session int, seq int64, t time.Duration) {
	f.mu.Lock()
	if session >= 0 && session < len(f.recv) {
		setBit(&f.recv[session].sent, seq)
	}
	// Shards take t before the lock: the earliest and latest, whatever order they record in.
	if f.sentN == 0 || t < f.firstSend {
		f.firstSend = t
	}
	f.lastSend = max(f.lastSend, t)
	f.sentN++
	f.mu.Unlock()
}

// late records that a request was written d after it was due (open loop): the tool falling behind its
// schedule, not the gateway.
func (f *flowStats) late(d time.Duration) {
	f.mu.Lock()
	f.maxLate = max(f.maxLate, d)
	f.mu.Unlock()
}

// sendError records a request that could not be written (not counted as sent).
func (f *flowStats) sendError() {
	f.mu.Lock()
	f.sendErrs++
	f.mu.Unlock()
}

// final records the final response to request seq of session: a SIP or MSRP status code, or 0 for a
// transaction that ended without one (timeout, transport error).
func (f *flowStats) final(session int, seq int64, code int) {
	key := "error"
	if code > 0 {
		key = strconv.Itoa(code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finals[key]++
	f.finalN++
	if code >= 200 && code < 300 || session < 0 || session >= len(f.recv) {
		return
	}
	r := &f.recv[session]
	if !hasBit(r.seen, seq) && !hasBit(r.refused, seq) {
		f.doneN++
	}
	setBit(&r.refused, seq)
}

// received records a message that came out of the gateway at now (since the run's start), with its wire
// latency (negative: unknown).
func (f *flowStats) received(s stamp, now, wire time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.session >= len(f.recv) {
		f.foreign++
		return
	}
	if s.seq > f.sentN+maxAhead {
		f.neverSent++
		return
	}
	r := &f.recv[s.session]
	if hasBit(r.seen, s.seq) {
		f.dups++
		return
	}
	setBit(&r.seen, s.seq)
	if !hasBit(r.refused, s.seq) {
		f.doneN++
	}
	if f.delivered == 0 || now < f.firstRecv {
		f.firstRecv = now
	}
	f.lastRecv = max(f.lastRecv, now)
	f.delivered++
	if !f.byArrival { // else counted by arrived
		if s.seq < r.max {
			f.reordered++ // a later message of this session was already delivered
		} else {
			r.max = s.seq
		}
	}
	if len(f.lat) < maxLatencySamples {
		f.lat = append(f.lat, int64(now)-s.sentNs)
		if wire >= 0 {
			f.wire = append(f.wire, int64(wire))
		}
	}
}

// arrived records a stamp of this flow as it reached the tool's socket, in the order the socket gave them
// (flowStats.byArrival): a retransmission or copy of one already there does not count again.
func (f *flowStats) arrived(s stamp) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.session >= len(f.recv) || s.seq > f.sentN+maxAhead {
		return // counted by received
	}
	r := &f.recv[s.session]
	if hasBit(r.arrived, s.seq) {
		return
	}
	setBit(&r.arrived, s.seq)
	if s.seq < r.arrivedMax {
		f.reordered++ // a later message of this session was already there
	} else {
		r.arrivedMax = s.seq
	}
}

// receivedForeign counts a message that arrived but does not belong to this flow's accounting.
func (f *flowStats) receivedForeign() {
	f.mu.Lock()
	f.foreign++
	f.mu.Unlock()
}

// receivedMisrouted counts a message of this flow that the gateway delivered on another session than its own:
// one of the others, and a fault.
func (f *flowStats) receivedMisrouted() {
	f.mu.Lock()
	f.foreign++
	f.misrouted++
	f.mu.Unlock()
}

// settled says whether every sent message has its final response and was delivered or refused, so the
// drain wait can end early.
func (f *flowStats) settled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finalN >= f.sentN && f.doneN >= f.sentN
}

// snapshot is a progress view.
func (f *flowStats) snapshot() (sent, delivered, dups, reord, pending int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sentN, f.delivered, f.dups, f.reordered, f.sentN - f.finalN
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   int     `json:"samples"`
}

// FlowReport is the summary of one direction.
type FlowReport struct {
	Sent          int64            `json:"sent"`
	SendErrors    int64            `json:"send_errors"`
	Delivered     int64            `json:"delivered"`
	Lost          int64            `json:"lost"`
	Duplicated    int64            `json:"duplicated"`
	Reordered     int64            `json:"reordered"`
	NeverSent     int64            `json:"delivered_never_sent"` // stamps of this flow whose sequence number the tool never sent
	Foreign       int64            `json:"other_received"`
	Misrouted     int64            `json:"misrouted"`        // of the others: this flow's messages on another session
	AchievedRate  float64          `json:"achieved_rate"`    // messages per second sent (rates: report)
	DeliveredRate float64          `json:"delivered_rate"`   // messages per second delivered (rates: report)
	SendLate      float64          `json:"max_send_late_ms"` // the most a message went out after it was due (open loop): the tool behind, not the gateway
	Latency       Latency          `json:"latency"`
	WireLatency   *Latency         `json:"wire_latency,omitempty"` // MESSAGE→MSRP only (wire.go)
	Responses     map[string]int64 `json:"final_responses"`
	NoResponse    int64            `json:"no_final_response"`
}

func (f *flowStats) report() FlowReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Delivered counts what was sent and came out; a stamp that came out but was never sent (the gateway
	// mangled a body into another number) is a fault of its own, and hides no loss.
	neverSent := f.neverSent
	for i := range f.recv {
		neverSent += countAndNot(f.recv[i].seen, f.recv[i].sent)
	}
	r := FlowReport{
		Sent: f.sentN, SendErrors: f.sendErrs, Delivered: f.delivered - (neverSent - f.neverSent), Duplicated: f.dups,
		Reordered: f.reordered, NeverSent: neverSent, Foreign: f.foreign, Misrouted: f.misrouted,
		Responses: make(map[string]int64, len(f.finals)), NoResponse: f.sentN - f.finalN,
	}
	r.Lost = max(f.sentN-r.Delivered, 0)
	for k, v := range f.finals {
		r.Responses[k] = v
	}
	// Both rates are intervals over a span: N events 1/R apart span (N-1)/R, so (N-1)/span is R. The
	// achieved rate spans the first to the last send, the delivered rate the first to the last delivery.
	// A gateway that keeps up delivers with the spacing it was sent with (shifted by its latency): the two
	// agree. One that falls behind stretches the deliveries over a longer span; one that loses messages
	// delivers fewer over about the same. (Counting all N deliveries over last delivery − first send, as
	// the tool did, gave N/((N-1)/R + latency): above the achieved rate on short runs, as if the gateway
	// delivered faster than it was sent to.) Unset with fewer than two events.
	r.AchievedRate = eventRate(f.sentN, f.lastSend-f.firstSend)
	r.DeliveredRate = eventRate(f.delivered, f.lastRecv-f.firstRecv)
	r.SendLate = float64(f.maxLate) / 1e6
	r.Latency = summarise(f.lat)
	if len(f.wire) > 0 {
		w := summarise(f.wire)
		r.WireLatency = &w
	}
	return r
}

// countAndNot counts the bits set in a and not in b.
func countAndNot(a, b []uint64) int64 {
	var n int
	for i, w := range a {
		if i < len(b) {
			w &^= b[i]
		}
		n += bits.OnesCount64(w)
	}
	return int64(n)
}

// eventRate is n events over their span, as intervals per second: (n-1)/span; 0 without two events apart.
func eventRate(n int64, span time.Duration) float64 {
	if n < 2 || span <= 0 {
		return 0
	}
	return float64(n-1) / span.Seconds()
}

// summarise computes nearest-rank percentiles of nanosecond samples (sorting a copy).
func summarise(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	pick := func(p float64) float64 {
		i := int(p*float64(len(s))+0.999999) - 1
		i = min(max(i, 0), len(s)-1)
		return float64(s[i]) / 1e6
	}
	return Latency{P50: pick(0.50), P90: pick(0.90), P99: pick(0.99), Max: float64(s[len(s)-1]) / 1e6, N: len(s)}
}

// setupStats counts session setups (and teardowns).
type setupStats struct {
	mu       sync.Mutex
	ok       int64
	failures map[string]int64
	durs     []int64
	byes     int64
	byeFails int64
	start    time.Duration
	end      time.Duration
}

func newSetupStats() *setupStats { return &setupStats{failures: make(map[string]int64), start: -1} }

func (s *setupStats) began(t time.Duration) {
	s.mu.Lock()
	if s.start < 0 || t < s.start {
		s.start = t
	}
	s.mu.Unlock()
}

func (s *setupStats) done(d time.Duration, end time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end > s.end {
		s.end = end
	}
	if err != nil {
		s.failures[errorClass(err)]++
		return
	}
	s.ok++
	s.durs = append(s.durs, int64(d))
}

// noneUp says whether setups were tried and none succeeded.
func (s *setupStats) noneUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok == 0 && len(s.failures) > 0
}

func (s *setupStats) bye(err error) {
	s.mu.Lock()
	if err != nil {
		s.byeFails++
	} else {
		s.byes++
	}
	s.mu.Unlock()
}

// SetupReport summarises session setups.
type SetupReport struct {
	Count      int64            `json:"count"`
	Failures   int64            `json:"failures"`
	Why        map[string]int64 `json:"failure_reasons,omitempty"`
	PhaseMs    float64          `json:"phase_ms"`   // first INVITE/MESSAGE sent to last setup finished
	PerSecond  float64          `json:"per_second"` // successful setups over the phase
	Duration   Latency          `json:"duration"`   // per setup
	Byes       int64            `json:"byes"`       // sessions ended by the tool with an answered BYE
	ByeFailure int64            `json:"bye_failures"`
}

func (s *setupStats) report() SetupReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := SetupReport{Count: s.ok, Duration: summarise(s.durs), Byes: s.byes, ByeFailure: s.byeFails}
	for k, v := range s.failures {
		r.Failures += v
		if r.Why == nil {
			r.Why = make(map[string]int64)
		}
		r.Why[k] = v
	}
	if s.start >= 0 && s.end > s.start {
		r.PhaseMs = float64(s.end-s.start) / 1e6
		r.PerSecond = float64(s.ok) / (s.end - s.start).Seconds()
	}
	return r
}

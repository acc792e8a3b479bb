package gateway

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
)

// This file sends the MESSAGEs the gateway generates: from SENDs, and notifications. They go out one
// outstanding at a time per destination Request-URI (RFC 3428 §8), which also keeps each session's order.

// sipJob is one MESSAGE to generate.
type sipJob struct {
	s           *Session // nil for notifications
	in          *msrp.Incoming
	cpim        *cpim.Message
	contentType string
	body        []byte
	coords      Coords
	arrived     time.Time
	notice      bool          // a notification MESSAGE (no REPORT)
	key         string        // a notification's session key, for the log and event of its failure
	callID      string        // a notification's subject: the Call-ID of the MESSAGE it reports on
	hold        time.Duration // its answer was a 503 with Retry-After: how long its destination waits (retryAfterHold)
	settled     atomic.Bool   // its outcome is known and reported: by its response, or by sipOut.stop
}

// reports says whether the job's outcome goes back to its session (reportBack): a MESSAGE made from a SEND.
func (j *sipJob) reports() bool { return j.s != nil && !j.notice }

// sipOut holds a FIFO per destination; a destination with work has one goroutine sending it.
type sipOut struct {
	g       *Gateway
	mu      sync.Mutex
	dests   map[string]*destQueue
	n       int          // jobs queued or in flight
	open    atomic.Int64 // jobs whose outcome is not known yet
	stopped bool         // stop ran: MESSAGEs made from SENDs are refused
	closed  bool         // close ran: everything is refused (wg is being waited for)
	wg      sync.WaitGroup
}

type destQueue struct {
	jobs []*sipJob
	cur  *sipJob // the job sent last: in flight, unless settled
}

func newSIPOut(g *Gateway) *sipOut {
	return &sipOut{g: g, dests: make(map[string]*destQueue)}
}

var (
	// errOutStopped refuses a MESSAGE made from a SEND once stop ran.
	errOutStopped = errors.New("draining: session ending")
	// errOutClosed refuses every MESSAGE once close ran.
	errOutClosed = errors.New("gateway closed")
)

// enqueue queues j for its destination. It refuses everything once close ran; j, a MESSAGE made from a SEND,
// once stop ran; and j, a notification, when a queue bound leaves no room for it. A MESSAGE made from a SEND has its session's and the
// total bound checked before it is made (msrpside.go); a notification, made when a message or a setup fails,
// would otherwise pile up without end while its destination does not answer (each waits Timer F, one at a time).
func (o *sipOut) enqueue(j *sipJob) error {
	o.mu.Lock()
	switch {
	case o.closed: // a notification from a goroutine outliving Close: its wg.Add would race close's Wait
		o.mu.Unlock()
		return errOutClosed
	case o.stopped && j.reports():
		o.mu.Unlock()
		return errOutStopped
	}
	q := o.dests[j.coords.RURI]
	if j.notice {
		lim := o.g.cfg.Limits
		var err error
		switch {
		case q != nil && lim.MaxQueuedPerSession > 0 && len(q.jobs) >= lim.MaxQueuedPerSession:
			err = &limitError{key: "max_queued_per_session", limit: lim.MaxQueuedPerSession, count: len(q.jobs), what: "MESSAGEs waiting for their destination"}
		case lim.MaxQueuedTotal > 0 && o.n >= lim.MaxQueuedTotal:
			err = &limitError{key: "max_queued_total", limit: lim.MaxQueuedTotal, count: o.n, what: "MESSAGEs queued to page-mode users"}
		}
		if err != nil {
			o.mu.Unlock()
			return err
		}
	}
	o.n++
	o.open.Add(1)
	if q != nil {
		q.jobs = append(q.jobs, j)
		o.mu.Unlock()
		return nil
	}
	q = &destQueue{jobs: []*sipJob{j}}
	o.dests[j.coords.RURI] = q
	o.wg.Add(1)
	o.mu.Unlock()
	o.next(j.coords.RURI, q)
	return nil
}

// next sends the destination's next MESSAGE, or retires its queue when it is empty. A MESSAGE that goes out
// through the UDP client (udpclient.go) is not waited for: it leaves right here, on the goroutine that queued
// it or read the previous one's response, without a goroutine hop, and its response's callback goes on with
// the queue. Anything else is sent and waited for on a worker (run).
func (o *sipOut) next(dest string, q *destQueue) {
	j := o.pop(dest, q)
	if j == nil {
		return
	}
	if req, ok := o.sendAsync(dest, q, j); !ok {
		// It would block this goroutine (an MSRP reader, or one reading a SIP listener): a worker goes on.
		o.g.workers.start(func() {
			o.finish(j, o.g.sendMessage(j, req))
			if j.hold > 0 {
				o.holdThen(j, func() { o.run(dest, q) })
				return
			}
			o.run(dest, q)
		})
	}
}

// run sends a destination's MESSAGEs one after the other, on a worker, until its queue is empty or one goes
// out through the UDP client (next).
func (o *sipOut) run(dest string, q *destQueue) {
	for {
		j := o.pop(dest, q)
		if j == nil {
			return
		}
		req, ok := o.sendAsync(dest, q, j)
		if ok {
			return
		}
		o.finish(j, o.g.sendMessage(j, req))
		if j.hold > 0 {
			o.holdThen(j, func() { o.run(dest, q) })
			return
		}
	}
}

// sendAsync starts j through the UDP client; the response's callback finishes it and goes on with the
// queue. ok false: j was not started, and req (nil if it could not be built) is for the waiting path.
func (o *sipOut) sendAsync(dest string, q *destQueue, j *sipJob) (req *sip.Request, ok bool) {
	return o.g.sendMessageAsync(j, func(res outcome) {
		o.finish(j, res)
		if j.hold > 0 {
			o.holdThen(j, func() { o.next(dest, q) })
			return
		}
		o.next(dest, q)
	})
}

// maxRetryAfterHold bounds how long a destination's MESSAGEs wait after a 503 with Retry-After: a server
// announcing an hour of maintenance must not keep the messages behind it for that hour.
const maxRetryAfterHold = 32 * time.Second

// holdThen goes on with j's destination (cont) once the Retry-After of the 503 that answered j has passed, or
// the gateway closes: RFC 3261 §21.5.4 says a client SHOULD NOT send that server other requests meanwhile.
func (o *sipOut) holdThen(j *sipJob, cont func()) {
	o.g.log.Info("MESSAGE answered 503 with Retry-After: holding the next ones to its destination", "ruri", j.coords.RURI, "hold", j.hold)
	go func() {
		t := time.NewTimer(j.hold)
		defer t.Stop()
		select {
		case <-t.C:
		case <-o.g.ctx.Done():
		}
		cont()
	}()
}

// retryAfterHold is how long the destination of a MESSAGE answered res waits before its next one: the
// delta-seconds of a 503's Retry-After (RFC 3261 §20.33, §21.5.4), at most maxRetryAfterHold; 0 for any other
// answer.
func retryAfterHold(res *sip.Response) time.Duration {
	if res == nil || res.StatusCode != 503 {
		return 0
	}
	h := res.GetHeader("retry-after")
	if h == nil {
		return 0
	}
	v := strings.TrimSpace(h.Value())
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i] // delta-seconds, then an optional comment and parameters
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxRetryAfterHold)
}

// pop takes the destination's next MESSAGE, or retires the queue when it is empty.
func (o *sipOut) pop(dest string, q *destQueue) *sipJob {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(q.jobs) == 0 {
		delete(o.dests, dest)
		o.wg.Done()
		return nil
	}
	j := q.jobs[0]
	q.jobs[0] = nil
	q.jobs = q.jobs[1:]
	q.cur = j
	return j
}

// finish ends a sent MESSAGE: its outcome goes back to its session, unless stop settled it already.
func (o *sipOut) finish(j *sipJob, res outcome) {
	o.settle(j, res)
	o.mu.Lock()
	o.n--
	o.mu.Unlock()
}

// settle reports j's outcome, once.
func (o *sipOut) settle(j *sipJob, res outcome) {
	if !j.settled.CompareAndSwap(false, true) {
		return
	}
	if j.reports() {
		j.s.toSIPOpen.Add(-1)
		j.reportBack(o.g, res)
	}
	if j.notice && !res.delivered() {
		// Nobody else hears of it: the sender never learns its message failed.
		o.g.log.Info("notification failed", "key", j.key, "to", j.coords.RURI, "code", res.Code, "reason", res.Reason, "call_id", j.callID)
		o.g.publish(event.Event{Kind: event.MessageDropped, Key: j.key, Direction: event.ToSIP, CallID: j.callID, Reason: "notification failed"})
	}
	o.open.Add(-1)
}

// stop ends the carrying of MESSAGEs made from SENDs, at the end of a drain: those queued are dropped and
// those in flight settled, all with res and reported back now, while their sessions still exist; later ones
// are refused (enqueue). The answer to one in flight, when it comes, changes nothing. Notifications still go.
func (o *sipOut) stop(res outcome) {
	var left []*sipJob
	o.mu.Lock()
	o.stopped = true
	for _, q := range o.dests {
		if q.cur != nil && q.cur.reports() {
			left = append(left, q.cur)
		}
		kept := q.jobs[:0]
		for _, j := range q.jobs {
			if j.reports() {
				left = append(left, j)
				o.n--
			} else {
				kept = append(kept, j)
			}
		}
		clear(q.jobs[len(kept):])
		q.jobs = kept
	}
	o.mu.Unlock()
	for _, j := range left {
		o.settle(j, res)
	}
}

func (o *sipOut) pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// drain waits until every MESSAGE queued has its outcome, or ctx ends. Those stop settled are not waited for.
func (o *sipOut) drain(ctx context.Context) { o.g.waitZero(ctx, &o.open) }

// close refuses every later MESSAGE and waits until no destination is being sent to.
func (o *sipOut) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.wg.Wait()
}

// sendMessage generates one MESSAGE (req, when already built) through sipgo and returns the page-mode
// side's final response. MESSAGEs over UDP to an IP address go through sendMessageAsync instead.
func (g *Gateway) sendMessage(j *sipJob, req *sip.Request) outcome {
	if req == nil {
		var err error
		if req, err = g.buildMessage(j); err != nil {
			g.log.Warn("cannot build MESSAGE", "err", err, "ruri", j.coords.RURI)
			return outcome{500, "Server Internal Error"}
		}
	}
	g.udpc.fromListener(req)
	return g.doMessage(j, req, nil)
}

// doMessage sends req through sipgo, answering each challenge once (SPEC §8: one not answered is the final
// response), and returns the final response's outcome. done holds the challenges req answered before.
func (g *Gateway) doMessage(j *sipJob, req *sip.Request, done answered) outcome {
	ctx, cancel := context.WithTimeout(g.ctx, sip.Timer_F+time.Second)
	defer cancel()
	res, err := g.client.Do(ctx, req)
	for err == nil && isChallenge(res) && g.answerChallenge(req, res, &done) {
		res, err = g.client.Do(ctx, req)
	}
	if errors.Is(err, sip.ErrTransactionTransport) {
		// Its connection closed before the final response (or could not carry it): the transaction ended at
		// once (startSIP), and the MESSAGE fails as a 503 (RFC 3261 §8.1.3.1), the next one to the destination
		// going out on a new connection. Said here: "message to SIP failed" alone does not say why.
		g.log.Warn("MESSAGE failed on a transport failure, as 503", "ruri", req.Recipient.String(), "err", err)
	}
	j.hold = retryAfterHold(res)
	return g.messageOutcome(res, err)
}

// sendMessageAsync starts j's MESSAGE through the UDP client (udpclient.go); done gets the outcome from the
// goroutine that read the response (or from a timer). ok is false when the MESSAGE does not go that way:
// req is then the built request for sendMessage (nil when it could not be built).
func (g *Gateway) sendMessageAsync(j *sipJob, done func(outcome)) (req *sip.Request, ok bool) {
	if g.udpc == nil {
		return nil, false
	}
	r, err := g.buildMessage(j) // not the result req: captured by the callback, that would be moved to the heap
	if err != nil {
		return nil, false
	}
	started, err := g.udpc.start(g.client, r, func(res *sip.Response, err error) {
		g.asyncAnswered(j, r, res, err, nil, done)
	})
	switch {
	case started:
		return r, true
	case err != nil:
		// Built for UDP but not sent (the client closed, or the socket refused it): that is the outcome.
		go done(g.messageOutcome(nil, err))
		return r, true
	}
	return r, false
}

// asyncAnswered takes the final response (or the error) of a MESSAGE sendMessageAsync started: a challenge
// not answered yet sends it again with the answer (challenges: those answered before), anything else is the
// outcome.
func (g *Gateway) asyncAnswered(j *sipJob, req *sip.Request, res *sip.Response, err error, challenges answered, done func(outcome)) {
	if err == nil && isChallenge(res) && g.answerChallenge(req, res, &challenges) {
		if err = g.resendAnswered(j, req, challenges, done); err == nil {
			return
		}
		res = nil
	}
	j.hold = retryAfterHold(res)
	done(g.messageOutcome(res, err))
}

// resendAnswered sends req again, with the answers to challenges, and has done get its outcome; an error when
// it could not be sent. Apart from asyncAnswered so that only a challenged MESSAGE allocates for it (the
// SEND→MESSAGE path is hot).
func (g *Gateway) resendAnswered(j *sipJob, req *sip.Request, challenges answered, done func(outcome)) error {
	started, err := g.udpc.start(g.client, req, func(res *sip.Response, err error) {
		g.asyncAnswered(j, req, res, err, challenges, done)
	})
	if !started && err == nil {
		// The credentials took it off UDP (answerChallenge): sipgo sends it, waited for on a worker, not on the
		// goroutine reading the listener.
		g.workers.start(func() { done(g.doMessage(j, req, challenges)) })
	}
	return err
}

// answerChallenge adds credentials for a 401/407 (SPEC §8); false when it cannot, and the challenge is
// then the final response.
func (g *Gateway) answerChallenge(req *sip.Request, res *sip.Response, done *answered) bool {
	if err := g.authorize(req, res, done); err != nil {
		g.log.Warn("MESSAGE challenge not answered", "err", err, "code", res.StatusCode, "ruri", req.Recipient.String())
		return false
	}
	return true
}

// messageOutcome turns a generated MESSAGE's final response, or the error that ended its transaction, into
// an outcome.
func (g *Gateway) messageOutcome(res *sip.Response, err error) outcome {
	if err == nil && res == nil {
		// sipgo hands back a nil response when the transaction is torn down under it (shutdown).
		err = errors.New("transaction ended without a response")
	}
	if err != nil {
		if errors.Is(err, sip.ErrTransactionTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return outcome{408, "Request Timeout"}
		}
		if g.ctx.Err() != nil || errors.Is(err, errClientClosed) {
			return outcomeDraining
		}
		return outcome{503, "Service Unavailable"}
	}
	return outcome{res.StatusCode, res.Reason}
}

// messageURIs are a MESSAGE's Request-URI, From and To, parsed from Coords.
type messageURIs struct {
	ruri, from, to sip.Uri
	// overhead is the size of a MESSAGE built from these URIs besides its body and Content-Type value: the
	// same for every message of a session (tags and Call-IDs have fixed lengths). 0 until measured.
	overhead atomic.Int64
}

func parseCoords(c Coords) (*messageURIs, error) {
	u := &messageURIs{}
	if err := sip.ParseUri(c.RURI, &u.ruri); err != nil {
		return nil, err
	}
	if err := sip.ParseUri(c.From, &u.from); err != nil {
		return nil, err
	}
	if err := sip.ParseUri(c.To, &u.to); err != nil {
		return nil, err
	}
	return u, nil
}

// uris parses the job's coordinates. A session's job carries the session's coordinates, which never change:
// they are parsed once per session.
func (j *sipJob) uris() (*messageURIs, error) {
	if j.s == nil {
		return parseCoords(j.coords)
	}
	if u := j.s.uris.Load(); u != nil {
		return u, nil
	}
	u, err := parseCoords(j.coords)
	if err == nil {
		j.s.uris.Store(u)
	}
	return u, err
}

// buildMessage makes the job's MESSAGE: no Contact (RFC 3428 §4).
func (g *Gateway) buildMessage(j *sipJob) (*sip.Request, error) {
	u, err := j.uris()
	if err != nil {
		return nil, err
	}
	req := sip.NewRequest(sip.MESSAGE, *u.ruri.Clone())
	from := &sip.FromHeader{Address: *u.from.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: *u.to.Clone(), Params: sip.NewParams()})
	cid := sip.CallIDHeader(newCallID())
	req.AppendHeader(&cid)
	req.AppendHeader(sip.NewHeader("Content-Type", j.contentType))
	req.SetBody(j.body)
	g.route(req)
	variable := len(j.body) + len(j.contentType)
	over := u.overhead.Load()
	if over == 0 { // measured once per session: a session's MESSAGEs differ in body and type only
		over = int64(requestSize(req) - variable)
		u.overhead.Store(over)
	}
	offUDPIfLarge(req, int(over)+variable)
	return req, nil
}

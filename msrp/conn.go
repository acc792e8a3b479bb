package msrp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msrpgw/msrpgw/internal/rawio"
)

// conn is one transport connection: a reader goroutine (parsing, routing, handler calls) and a writer
// goroutine (bounded queue, batched writes), both owned by the Endpoint. Frames queued while the writer is
// idle are written by the goroutine that queued them, when the socket takes them at once (kick).
type conn struct {
	e       *Endpoint
	nc      net.Conn
	remote  string
	ip      string
	key     string // reuse key when we dialled it, "" when accepted or a relay's
	dialled bool
	relay   bool    // a Relay's: open without sessions too, until Relay.Close or loss; never reused by dial
	rd      *Reader // the Reader that read the AUTH's answer (a Relay's), which readLoop carries on with; else nil
	log     *slog.Logger

	wake    chan struct{} // capacity 1: "queue not empty"
	drained chan struct{} // capacity 1: "the writer took the queue"
	done    chan struct{} // closed by close()

	mu       sync.Mutex
	queue    []frame
	spare    []frame
	txs      map[string]*tx
	pending  map[pendingKey]*outMsg // messages sent with Failure-Report yes or partial that have not ended yet
	sessions map[*Session]struct{}
	closed   bool
	closeErr error
	// lingering: a dialled connection left without sessions while transactions were still open on it; it
	// closes once they are answered or time out (closeIfLingering), unless a session binds to it again.
	lingering bool
	unbound   *time.Timer
	// answering is the message the reader is handing to its handler, until the response to its last chunk is
	// queued; a REPORT about it made meanwhile (a handler that reports at once) waits in held, so the peer gets
	// the transaction's response before the delivery report, as it sent them (unless a barrier lets it go first).
	answering *Incoming
	held      []frame

	// The write side (see kick). writing: someone owns it; resume: kick left the writer goroutine the
	// rest of its batch or of wbuf, and the write side with it.
	writing bool
	resume  bool
	// Owned by whoever holds writing: the frames being encoded (batch from next on), the encoded bytes not
	// written yet (wbuf from woff on), and the frames encoded since the last flush.
	batch []frame
	next  int
	wbuf  []byte
	woff  int
	wrote []frame
	// writeSince: unix nanoseconds when the blocking write in progress (writeOut) began its current piece, 0
	// when none is. A peer that stops reading while keeping the connection open holds a write for ever (TCP
	// never gives up on a peer that answers its window probes): the janitor closes a connection whose write
	// made no progress for Config.TransactionTimeout (closeStalled).
	writeSince atomic.Int64

	// active: frames were taken for writing since the last keep-alive look (Config.KeepAlive). Under mu.
	active bool

	tryWrite bool // rawio.TryWrite works on nc (plain TCP): kick may write
	secure   bool // TLS

	rxRaw net.Conn  // the TCP connection whose receive timestamps Received uses (Config.RxTimestamps), or nil
	rx    time.Time // reader goroutine only: when the frame being handled arrived (Config.RxTimestamps)
}

// frame is one queued outgoing frame.
type frame struct {
	m   *Message // nil for a flush marker (barrier): nothing is written
	out *outMsg  // nil for responses
	tx  *tx      // non-nil when a response is expected
}

// outMsg tracks one Send (all its chunks). Guarded by conn.mu.
type outMsg struct {
	s          *Session
	id         string
	fr         string
	done       func(SendResult)
	chunks     int
	written    int
	ok         int
	finished   bool
	aborted    bool // stop the remaining chunks
	quiet      bool // the peer said stop (413): not even a '#' chunk (RFC 4975 §10.5)
	anyWritten bool
	abortSent  bool
	txs        []*tx
}

// pendingKey names a message we are sending: a failure REPORT finds it by its session and Message-ID.
type pendingKey struct {
	s  *Session
	id string
}

// tx is one pending transaction. Guarded by conn.mu.
type tx struct {
	tid   string
	out   *outMsg
	timer *time.Timer
}

// callback is a done call collected under the lock and run after it.
type callback struct {
	f func(SendResult)
	r SendResult
}

func runCallbacks(cbs []callback) {
	for _, cb := range cbs {
		if cb.f != nil {
			cb.f(cb.r)
		}
	}
}

func newConn(e *Endpoint, nc net.Conn, key string) *conn {
	remote := nc.RemoteAddr().String()
	ip := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		ip = h
	}
	c := &conn{
		e: e, nc: nc, remote: remote, ip: ip, key: key, dialled: key != "",
		log:      e.log.With("remote", remote),
		wake:     make(chan struct{}, 1),
		drained:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		txs:      make(map[string]*tx),
		pending:  make(map[pendingKey]*outMsg),
		sessions: make(map[*Session]struct{}),
	}
	_, c.secure = nc.(*tls.Conn)
	c.tryWrite = rawio.CanTryWrite(nc)
	if e.cfg.RxTimestamps {
		raw := nc
		if tc, ok := nc.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		if rawio.EnableRxTimestamps(raw) {
			c.rxRaw = raw
		}
	}
	return c
}

// received is when the frame just read arrived: the kernel's timestamp of the newest bytes read, or now.
func (c *conn) received() time.Time {
	if c.rxRaw != nil {
		if t := rawio.RxTime(c.rxRaw); !t.IsZero() {
			return t
		}
	}
	return time.Now()
}

// start runs the reader and writer goroutines (the caller did e.wg.Add(2)).
func (c *conn) start() {
	go c.readLoop()
	go c.writeLoop()
}

// close closes the socket; the reader goroutine then releases everything (shutdown).
func (c *conn) close(err error) {
	c.mu.Lock()
	closing := c.markClosedLocked(err)
	c.mu.Unlock()
	if closing {
		c.shut()
	}
}

// markClosedLocked marks c closed (the caller holds c.mu) and reports whether it did; the caller then calls
// shut. Deciding to close an idle connection and marking it closed under one lock keeps a session that reuses
// it (addSession) from binding it in between, only to lose it a moment later: it dials a new one instead.
func (c *conn) markClosedLocked(err error) bool {
	if c.closed {
		return false
	}
	c.closed = true
	c.closeErr = err
	if c.unbound != nil {
		c.unbound.Stop()
	}
	return true
}

// shut closes the socket of a connection markClosedLocked marked.
func (c *conn) shut() {
	close(c.done)
	_ = c.nc.Close()
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// finish ends out once with r (caller holds c.mu); it removes the message's pending transactions.
func (c *conn) finish(out *outMsg, r SendResult, cbs []callback) []callback {
	if out.finished {
		return cbs
	}
	out.finished = true
	if k := (pendingKey{out.s, out.id}); c.pending[k] == out {
		delete(c.pending, k)
	}
	if r.Err != nil || (r.StatusCode != 200 && r.StatusCode != 0) {
		out.aborted = true
		out.quiet = r.StatusCode == 413
	}
	for _, t := range out.txs {
		if c.txs[t.tid] == t {
			delete(c.txs, t.tid)
		}
		if t.timer != nil {
			t.timer.Stop()
		}
	}
	r.MessageID = out.id
	return append(cbs, callback{out.done, r})
}

// sendMsgs queues the frames of one message, registering a transaction per chunk unless fr is "no".
func (c *conn) sendMsgs(s *Session, id, fr string, msgs []*Message, done func(SendResult), about *Incoming) error {
	out := &outMsg{s: s, id: id, fr: fr, done: done, chunks: len(msgs)}
	frames := make([]frame, len(msgs))
	for i, m := range msgs {
		m.fixTID()
		frames[i] = frame{m: m, out: out}
		if fr != "no" && m.Method == MethodSend {
			frames[i].tx = &tx{tid: m.TransactionID, out: out}
			out.txs = append(out.txs, frames[i].tx)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNotBound
	}
	if len(c.queue) > 0 && len(c.queue)+len(frames) > c.e.cfg.WriteQueue {
		n := len(c.queue)
		c.mu.Unlock()
		return fmt.Errorf("%w (%d frames queued, message needs %d, limit %d)", ErrQueueFull, n, len(frames), c.e.cfg.WriteQueue)
	}
	for _, f := range frames {
		if f.tx == nil {
			continue
		}
		for c.txs[f.tx.tid] != nil { // a clash among live transactions: pick another id
			f.m.TransactionID = ""
			f.m.fixTID()
			f.tx.tid = f.m.TransactionID
		}
		c.txs[f.tx.tid] = f.tx
	}
	if fr != "no" { // partial too: its errors may come only as REPORTs, from a relay on the path
		c.pending[pendingKey{s, id}] = out
	}
	if about != nil && about == c.answering {
		c.held = append(c.held, frames...) // queued by answered, after the response
		c.mu.Unlock()
		return nil
	}
	c.queue = append(c.queue, frames...)
	c.mu.Unlock()
	c.kick()
	return nil
}

// answered queues what was held back for in, whose response is queued now (or not sent: Failure-Report).
func (c *conn) answered() {
	c.mu.Lock()
	c.answering = nil
	held := c.held
	c.held = nil
	if !c.closed && len(held) > 0 {
		c.queue = append(c.queue, held...)
	}
	lingering := c.lingering
	c.mu.Unlock()
	if len(held) > 0 {
		c.kick()
	}
	if lingering {
		c.closeIfLingering() // nothing was queued: no response (Failure-Report), none held
	}
}

// barrier queues a marker that writes nothing: done gets SendResult{} once every frame queued before it is
// written and flushed, or the error that ended s's sends on this connection first. What is held for the
// response being made (answered) goes ahead of it, and so ahead of that response: a barrier held too would
// wait for the handler, and one asked for by the handler itself would never come.
func (c *conn) barrier(s *Session, done func(SendResult)) error {
	out := &outMsg{s: s, fr: "no", done: done, chunks: 1}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrNotBound
	}
	c.queue = append(c.queue, c.held...)
	c.held = nil
	c.queue = append(c.queue, frame{out: out})
	c.mu.Unlock()
	c.signal()
	return nil
}

// respond queues a response. It runs on the reader goroutine, so when responses pile up beyond twice
// WriteQueue it waits for the writer to catch up: the peer's requests wait in TCP until it reads its
// responses. A peer that reads none for TransactionTimeout is not reading at all, and the connection is
// closed.
func (c *conn) respond(req *Message, code int, comment string) {
	r := &Message{TransactionID: req.TransactionID, StatusCode: code, Comment: comment, Flag: '$'}
	switch {
	case len(req.FromPath) == 0:
		r.ToPath = []URI{c.e.fallbackURI()}
	case req.Method == MethodSend:
		r.ToPath = req.FromPath[:1]
	default:
		r.ToPath = req.FromPath
	}
	if len(req.ToPath) > 0 {
		r.FromPath = req.ToPath[:1]
	} else {
		r.FromPath = []URI{c.e.fallbackURI()}
	}
	var stall *time.Timer
	c.mu.Lock()
	for len(c.queue) >= 2*c.e.cfg.WriteQueue && !c.closed {
		c.mu.Unlock()
		if stall == nil {
			stall = time.NewTimer(c.e.cfg.TransactionTimeout)
			defer stall.Stop()
		}
		select {
		case <-c.drained:
		case <-c.done:
		case <-stall.C:
			c.log.Warn("msrp: closing connection: peer does not read its responses", "queued", 2*c.e.cfg.WriteQueue)
			c.close(ErrQueueFull)
			return
		}
		c.mu.Lock()
	}
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, frame{m: r})
	c.mu.Unlock()
	c.kick()
}

// respondFR sends code unless the request's Failure-Report forbids it (RFC 4975 §7.1.4: no -> never,
// partial -> only errors).
func (c *conn) respondFR(req *Message, code int, comment string) {
	switch req.FailureReport() {
	case "no":
		return
	case "partial":
		if code == 200 {
			return
		}
	}
	c.respond(req, code, comment)
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// addSession binds s to c; false when c is closed.
func (c *conn) addSession(s *Session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.sessions[s] = struct{}{}
	c.lingering = false
	if c.unbound != nil {
		c.unbound.Stop()
		c.unbound = nil
	}
	return true
}

// removeSession unbinds s; a dialled connection without sessions is closed, an accepted one gets its
// unbound timer again. A dialled one with transactions still open waits for their answers first (at most
// TransactionTimeout): a session moved to another path (SetPeerPath) learns the fate of the SENDs it
// already wrote here instead of losing them with the connection.
func (c *conn) removeSession(s *Session) {
	c.mu.Lock()
	delete(c.sessions, s)
	empty := len(c.sessions) == 0 && !c.closed && !c.relay
	if empty && !c.dialled && c.unbound == nil {
		c.unbound = time.AfterFunc(c.e.cfg.UnboundTimeout, c.unboundExpired)
	}
	closeNow := empty && c.dialled && c.quietLocked()
	c.lingering = empty && c.dialled && !closeNow
	closeNow = closeNow && c.markClosedLocked(nil)
	c.mu.Unlock()
	if closeNow {
		c.log.Debug("msrp: closing dialled connection without sessions")
		c.shut()
	}
}

// quietLocked says whether nothing is under way on c: no transaction open, no response being made or held
// back, nothing queued or being written. A dialled connection its last session left closes only then: a
// session closed from its own handler still owes the peer the response to the request being handled (RFC 4975
// §7.2), and the REPORTs held behind it.
func (c *conn) quietLocked() bool {
	return len(c.txs) == 0 && c.answering == nil && len(c.held) == 0 && len(c.queue) == 0 && !c.writing && !c.resume
}

// closeIfLingering closes a lingering connection (removeSession) once it is quiet: its last transaction
// ended, its last response written.
func (c *conn) closeIfLingering() {
	c.mu.Lock()
	done := c.lingering && len(c.sessions) == 0 && c.quietLocked() && c.markClosedLocked(nil)
	c.mu.Unlock()
	if done {
		c.log.Debug("msrp: closing dialled connection: its last transaction ended")
		c.shut()
	}
}

// releaseIfIdle closes a dialled connection nobody bound to.
func (c *conn) releaseIfIdle() {
	c.mu.Lock()
	idle := len(c.sessions) == 0 && c.dialled && !c.relay && c.markClosedLocked(nil)
	c.mu.Unlock()
	if idle {
		c.shut()
	}
}

func (c *conn) unboundExpired() {
	c.mu.Lock()
	idle := len(c.sessions) == 0 && c.markClosedLocked(errors.New("msrp: no session bound in time"))
	c.mu.Unlock()
	if idle {
		c.log.Info("msrp: closing connection: no session bound", "after", c.e.cfg.UnboundTimeout)
		c.shut()
	}
}

// failSession ends s's pending sends on this connection with err and returns the callbacks to run.
func (c *conn) failSession(s *Session, err error) []callback {
	var cbs []callback
	c.mu.Lock()
	for _, t := range c.txs {
		if t.out.s == s {
			cbs = c.finish(t.out, SendResult{Err: err}, cbs)
		}
	}
	for _, f := range c.queue {
		if f.out != nil && f.out.s == s {
			cbs = c.finish(f.out, SendResult{Err: err}, cbs)
		}
	}
	c.mu.Unlock()
	return cbs
}

// Writing. One goroutine at a time owns the connection's write side (writing, with wbuf, batch and wrote):
// the writer goroutine, or the goroutine that queued frames while the writer was idle (kick). That one
// writes them itself when the socket takes them at once, which saves waking the writer for every message:
// a thread wake-up and two goroutine switches, the largest cost left when messages come one at a time
// (docs/PERFORMANCE.md). It never waits: what the socket does not take at once, the writer goroutine finishes
// (resume). The writer goroutine writes in batches: what is queued while it writes goes out with the next
// system call.

// wbufFlush is how many encoded bytes the writer collects before it writes them, flushed or not.
const wbufFlush = 32 << 10

// writePiece is the most writeOut writes in one call: a peer reading slower than writePiece per
// Config.TransactionTimeout counts as one that does not read.
const writePiece = 64 << 10

// closeStalled closes c when a write on it has made no progress since before limit (unix nanoseconds): its
// frames fail (writeLoop), its sessions end, and the connection's goroutines and socket are released.
func (c *conn) closeStalled(limit int64) {
	if since := c.writeSince.Load(); since != 0 && since < limit {
		c.log.Info("msrp: connection closed: peer does not read", "remote", c.nc.RemoteAddr().String(),
			"waited", time.Since(time.Unix(0, since)).Round(time.Millisecond).String())
		c.close(ErrPeerNotReading)
	}
}

// flushEvery is how many frames the writer may collect, while more keep coming, before it flushes: transaction
// timers and "written" callbacks are not postponed indefinitely under sustained load.
const flushEvery = 256

// kick gets what was just queued written: here and now when the writer is idle, the socket takes bytes
// without waiting (plain TCP on Linux) and nothing queued needs a callback once written (a callback could
// need a lock the caller holds); else by the writer goroutine.
func (c *conn) kick() {
	if !c.tryWrite {
		c.signal()
		return
	}
	c.mu.Lock()
	if c.writing || c.closed || len(c.queue) == 0 || !writableThrough(c.queue) {
		c.mu.Unlock()
		c.signal()
		return
	}
	c.writing = true
	c.takeQueueLocked()
	c.mu.Unlock()

	c.encode()
	if c.next == len(c.batch) {
		c.woff += rawio.TryWrite(c.nc, c.wbuf[c.woff:])
	}
	if c.next < len(c.batch) || c.woff < len(c.wbuf) {
		c.mu.Lock()
		c.resume = true // the writer goroutine owns the rest now
		c.mu.Unlock()
		c.signal()
		return
	}
	c.wbuf, c.woff = c.wbuf[:0], 0
	c.doneBatch()
	c.afterFlush(c.wrote) // transaction timers only (writableThrough)
	c.clearWrote()
	c.mu.Lock()
	c.writing = false
	more, lingering := len(c.queue) > 0, c.lingering
	c.mu.Unlock()
	if more {
		c.signal() // queued while we wrote
	} else if lingering {
		c.closeIfLingering()
	}
}

// keepAlive sends a bodiless SEND of one of c's sessions when nothing was written on c since the last look
// (Config.KeepAlive), so that it does not look idle to a relay or middlebox on the way.
func (c *conn) keepAlive() {
	c.mu.Lock()
	if c.closed || c.active {
		c.active = false
		c.mu.Unlock()
		return
	}
	// A session the relay on its peer's path only forwards on c (acceptVia) is in c.sessions too, but its
	// requests go on its own connection: the keep-alive is one of a session bound to c. Looked for outside c.mu,
	// which is taken under s.mu (acceptViaLocked).
	sessions := make([]*Session, 0, len(c.sessions))
	for s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.mu.Unlock()
	var s *Session
	var route []URI
	for _, cand := range sessions {
		cand.mu.Lock()
		r, bound := cand.route, cand.conn == c
		cand.mu.Unlock()
		if bound && len(r) > 0 {
			s, route = cand, r
			break
		}
	}
	if s == nil {
		return
	}
	msgs := chunkMessage(&Outgoing{}, NewMessageID(), route, s.path, 0)
	err := c.sendMsgs(s, msgs[0].Header(HdrMessageID), "yes", msgs, func(r SendResult) {
		if r.Err != nil || r.StatusCode != 200 {
			c.log.Info("msrp: keep-alive not answered 200", "session", s.id, "remote", c.remote, "code", r.StatusCode, "err", r.Err)
		}
	}, nil)
	if err != nil {
		c.log.Debug("msrp: keep-alive not sent", "session", s.id, "remote", c.remote, "err", err)
	}
}

// writableThrough reports whether frames can be written by kick: responses, and chunks whose transactions
// only start a timer once written (Failure-Report yes).
func writableThrough(frames []frame) bool {
	for i := range frames {
		f := &frames[i]
		if f.m == nil || (f.out != nil && f.out.fr != "yes") {
			return false
		}
	}
	return true
}

// takeQueueLocked makes the queue the owner's batch.
func (c *conn) takeQueueLocked() {
	c.active = true
	c.batch, c.next = c.queue, 0
	c.queue = c.spare[:0]
	c.spare = nil
	select {
	case c.drained <- struct{}{}:
	default:
	}
}

// encode appends the batch's frames to wbuf, as admit decides, until the batch is done or wbuf holds
// wbufFlush bytes. Owner only.
func (c *conn) encode() {
	for c.next < len(c.batch) && len(c.wbuf)-c.woff < wbufFlush {
		f := &c.batch[c.next]
		c.next++
		if f.out != nil && !c.admit(f) {
			continue
		}
		if f.m != nil { // else a barrier: done once the frames before it are flushed (afterFlush)
			c.wbuf = f.m.appendHead(c.wbuf)
			if f.m.Method != "" && f.m.Body != nil {
				c.wbuf = append(c.wbuf, f.m.Body...)
			}
			c.wbuf = f.m.appendTail(c.wbuf)
		}
		c.wrote = append(c.wrote, *f)
	}
}

// doneBatch recycles a batch encode has gone through. Owner only.
func (c *conn) doneBatch() {
	clear(c.batch)
	c.mu.Lock()
	c.spare = c.batch[:0]
	c.mu.Unlock()
	c.batch, c.next = nil, 0
}

func (c *conn) clearWrote() {
	clear(c.wrote)
	c.wrote = c.wrote[:0]
}

// writeOut writes wbuf's unwritten bytes, waiting for the socket while the peer reads: in pieces of at most
// writePiece bytes, each of which has Config.TransactionTimeout to go out (writeSince, closeStalled). Owner
// only. A large buffer is dropped, so that a burst of big chunks does not stay with an idle connection.
func (c *conn) writeOut() error {
	for c.woff < len(c.wbuf) {
		end := min(len(c.wbuf), c.woff+writePiece)
		c.writeSince.Store(time.Now().UnixNano())
		n, err := c.nc.Write(c.wbuf[c.woff:end])
		c.woff += n
		if err != nil {
			c.writeSince.Store(0)
			return err
		}
	}
	c.writeSince.Store(0)
	c.wbuf, c.woff = c.wbuf[:0], 0
	if cap(c.wbuf) > 2*wbufFlush {
		c.wbuf = nil
	}
	return nil
}

// writeLoop is the writer goroutine: it takes the queue when nobody owns the write side, or what kick left
// it, and writes until nothing is queued.
func (c *conn) writeLoop() {
	defer c.e.wg.Done()
	for {
		c.mu.Lock()
		for !c.closed && !c.resume && (c.writing || len(c.queue) == 0) {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.done:
			}
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.resume {
			c.resume = false // writing stays set: the write side is ours
		} else {
			c.writing = true
			c.takeQueueLocked()
		}
		c.mu.Unlock()
		if err := c.writeAll(); err != nil {
			c.log.Debug("msrp: write failed", "err", err)
			c.close(err)
			// wrote holds frames of earlier batches too (not flushed yet): a Send without transactions
			// (Failure-Report partial or no) is finished only here.
			c.failFrames(append(c.wrote, c.batch[c.next:]...), err)
			return
		}
	}
}

// writeAll writes the owner's batch and whatever is queued meanwhile, then gives up the write side. It
// flushes when nothing more is queued, or every flushEvery frames.
func (c *conn) writeAll() error {
	for {
		for {
			c.encode()
			if c.next == len(c.batch) {
				break
			}
			if err := c.writeOut(); err != nil { // wbuf is full
				return err
			}
		}
		c.doneBatch()
		c.mu.Lock()
		if len(c.queue) > 0 && len(c.wrote) < flushEvery {
			c.takeQueueLocked()
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if err := c.writeOut(); err != nil {
			return err
		}
		c.afterFlush(c.wrote)
		c.clearWrote()
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			lingering := c.lingering
			c.mu.Unlock()
			if lingering {
				c.closeIfLingering()
			}
			return nil
		}
		c.takeQueueLocked()
		c.mu.Unlock()
	}
}

// admit decides, just before writing, what a chunk becomes: itself, an empty '#' chunk (its message failed,
// e.g. timed out, after some chunks went out), or nothing (after a 413: "MUST NOT send any further chunks",
// RFC 4975 §10.5; our chunks are written whole, so none is ever cut short needing a '#'). Checking per frame lets a 413 stop a
// message in the middle of a batch.
func (c *conn) admit(f *frame) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch out := f.out; {
	case !out.finished:
		out.anyWritten = true
		return true
	case out.aborted && out.anyWritten && !out.abortSent && !out.quiet:
		out.abortSent = true
		f.m = abortFrame(f.m)
		f.tx = nil
		return true
	}
	return false
}

// abortFrame turns a chunk that will not be sent into an empty '#' chunk at the same position.
func abortFrame(m *Message) *Message {
	a := *m
	a.Body = m.Body[:0]
	a.Flag = '#'
	a.Headers = append([]Header(nil), m.Headers...)
	for i := range a.Headers {
		if a.Headers[i].Name == HdrByteRange {
			if br, err := ParseByteRange(a.Headers[i].Value); err == nil {
				br.End = -1
				a.Headers[i].Value = br.String()
			}
		}
	}
	return &a
}

// afterFlush starts transaction timers and completes Failure-Report partial/no messages.
func (c *conn) afterFlush(written []frame) {
	var cbs []callback
	c.mu.Lock()
	for _, f := range written {
		if f.out == nil || f.out.finished {
			continue
		}
		f.out.written++
		if f.tx != nil && f.out.fr == "yes" && c.txs[f.tx.tid] == f.tx {
			t := f.tx
			t.timer = time.AfterFunc(c.e.cfg.TransactionTimeout, func() { c.txTimeout(t) })
		}
		if f.out.fr != "yes" && f.out.written == f.out.chunks {
			cbs = c.finish(f.out, SendResult{}, cbs)
		}
	}
	c.mu.Unlock()
	runCallbacks(cbs)
}

func (c *conn) txTimeout(t *tx) {
	var cbs []callback
	c.mu.Lock()
	if c.txs[t.tid] == t {
		cbs = c.finish(t.out, SendResult{StatusCode: 408, Comment: "Transaction timed out"}, cbs)
	}
	c.mu.Unlock()
	runCallbacks(cbs)
	c.closeIfLingering()
}

func (c *conn) failFrames(batch []frame, err error) {
	var cbs []callback
	c.mu.Lock()
	for _, f := range batch {
		if f.out != nil {
			cbs = c.finish(f.out, SendResult{Err: fmt.Errorf("%w: %w", ErrConnLost, err)}, cbs)
		}
	}
	c.mu.Unlock()
	runCallbacks(cbs)
}

// readLoop reads frames until the connection fails, then releases everything.
func (c *conn) readLoop() {
	defer c.e.wg.Done()
	rd := c.rd
	if rd == nil {
		rd = NewReader(c.nc, c.e.cfg.Limits)
	}
	var err error
	for {
		var m *Message
		m, err = rd.ReadMessage()
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.protocolError(pe)
				continue
			}
			if errors.Is(err, ErrFraming) {
				c.e.refused(0, err.Error())
			}
			break
		}
		if c.e.cfg.RxTimestamps {
			c.rx = c.received()
		}
		c.handle(m)
	}
	c.shutdown(err)
}

// shutdown runs on the reader goroutine once the stream ended: fail pending work, unbind sessions.
func (c *conn) shutdown(readErr error) {
	c.mu.Lock()
	wasClosed := c.closed
	reason := c.closeErr
	c.mu.Unlock()
	if !wasClosed {
		if readErr == io.EOF {
			c.log.Debug("msrp: connection closed by peer")
		} else {
			c.log.Info("msrp: closing connection", "err", readErr)
		}
		c.close(readErr)
		reason = readErr
	}
	lost := reason
	if !errors.Is(reason, ErrClosed) {
		if reason == nil {
			reason = io.EOF
		}
		lost = fmt.Errorf("%w: %w", ErrConnLost, reason)
	}
	var cbs []callback
	c.mu.Lock()
	for _, t := range c.txs {
		cbs = c.finish(t.out, SendResult{Err: lost}, cbs)
	}
	for _, f := range c.queue {
		if f.out != nil {
			cbs = c.finish(f.out, SendResult{Err: lost}, cbs)
		}
	}
	c.queue = nil
	sessions := make([]*Session, 0, len(c.sessions))
	for s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.sessions = map[*Session]struct{}{}
	if c.unbound != nil {
		c.unbound.Stop()
		c.unbound = nil
	}
	c.mu.Unlock()
	c.e.removeConn(c)
	runCallbacks(cbs)
	for _, s := range sessions {
		s.connLost(c, lost)
	}
}

// protocolError answers (or not) a frame the reader could delimit but not accept.
func (c *conn) protocolError(pe *ProtocolError) {
	m := pe.Message
	c.log.Warn("msrp: bad frame", "tid", pe.TransactionID, "code", pe.Code, "reason", pe.Reason)
	if m == nil || m.Method == "" {
		return // a response: nothing refused, nothing to answer
	}
	c.e.refused(pe.Code, pe.Reason)
	if m.Method == MethodReport {
		return // REPORTs are never answered
	}
	if pe.Code == 413 && m.Method == MethodSend {
		c.stopMessage(m)
	}
	c.respondFR(m, pe.Code, reasonPhrase(pe.Code))
}

// stopMessage ends the message of a SEND chunk the reader refused 413 (over Limits.MaxChunkBytes) as the
// reassembler ends one it refuses itself: what came of it is dropped, and its later chunks get 413 too. Only for
// a session this connection serves and, with CheckFromPath, a chunk from its peer: as any other chunk.
func (c *conn) stopMessage(m *Message) {
	if len(m.ToPath) != 1 || m.MessageID() == "" {
		return
	}
	s := c.e.lookup(m.ToPath[0].SessionID)
	if s == nil || !s.takesFrom(c, m) {
		return
	}
	s.raMu.Lock()
	s.ra.stop(m, time.Now(), s.e.raLimits)
	s.raMu.Unlock()
}

// handle processes one well-formed frame.
func (c *conn) handle(m *Message) {
	if m.Method == "" {
		c.handleResponse(m)
		return
	}
	if m.Method != MethodSend && m.Method != MethodReport {
		c.log.Info("msrp: unknown method", "method", m.Method, "tid", m.TransactionID)
		c.e.refused(501, "unknown method")
		c.respond(m, 501, reasonPhrase(501))
		return
	}
	to := m.ToPath[0]
	s := c.e.lookup(to.SessionID)
	why := "unknown session-id"
	// We are the last hop: the To-Path is exactly one URI, of our session's scheme, and an msrps session
	// takes requests over TLS only (RFC 4975 §6, §7.3). Anything else is not addressed to our session.
	switch {
	case s == nil:
	case len(m.ToPath) != 1:
		s, why = nil, "To-Path of more than one URI (we are no relay)"
	case to.Secure != s.local.Secure:
		s, why = nil, "To-Path scheme is not the session's"
	case s.local.Secure && !c.secure:
		s, why = nil, "msrps session over a connection without TLS"
	}
	if s == nil {
		c.log.Info("msrp: request for unknown session", "method", m.Method, "to", FormatPath(m.ToPath), "why", why)
		c.e.refused(481, "unknown session")
		if m.Method == MethodSend {
			c.respondFR(m, 481, reasonPhrase(481))
		}
		return
	}
	if code := s.accept(c, m); code != 0 {
		c.log.Info("msrp: request refused", "method", m.Method, "session", s.id, "code", code,
			"from", FormatPath(m.FromPath))
		c.e.refused(code, "request refused by the session")
		if m.Method == MethodSend {
			c.respondFR(m, code, reasonPhrase(code))
		}
		return
	}
	if m.Method == MethodReport {
		r := &Report{MessageID: m.MessageID()}
		if br, err := m.ByteRange(); err == nil {
			r.ByteRange = br
		}
		code, comment, err := m.Status()
		if err != nil {
			c.log.Info("msrp: REPORT with bad Status ignored", "session", s.id, "err", err)
			c.e.refused(400, "REPORT with bad Status")
			return
		}
		r.StatusCode, r.Comment = code, comment
		if code != 200 {
			c.failPending(s, r)
		}
		s.deliverReport(r)
		return
	}
	// A bodiless SEND binds or keeps alive, unless its flag aborts a message: then it is that message's last
	// chunk, as an empty '#' chunk would be.
	if m.Body == nil && m.Flag != '#' {
		if ka, ok := s.h.(KeepAliveHandler); ok {
			ka.HandleKeepAlive(s)
		}
		c.respondFR(m, 200, "OK")
		return
	}
	if m.MessageID() == "" {
		c.log.Info("msrp: SEND without Message-ID", "session", s.id, "tid", m.TransactionID)
		c.e.refused(400, "Message-ID missing")
		c.respondFR(m, 400, "Message-ID missing")
		return
	}
	res := s.addChunk(m, time.Now())
	switch {
	case res.refuse != 0:
		c.log.Info("msrp: chunk refused", "session", s.id, "message_id", m.MessageID(), "code", res.refuse, "reason", res.reason)
		c.e.refused(res.refuse, res.reason)
		c.respondFR(m, res.refuse, reasonPhrase(res.refuse))
	case res.complete:
		in := &Incoming{
			MessageID:     m.MessageID(),
			ContentType:   res.first.ContentType(),
			Body:          res.body,
			SuccessReport: m.SuccessReport(),
			FailureReport: m.FailureReport(),
			FromPath:      m.FromPath,
			Chunks:        res.chunks,
			Received:      c.rx,
		}
		for _, h := range res.first.Headers {
			if isMIMEHeader(h.Name) {
				in.Headers = append(in.Headers, h)
			}
		}
		c.mu.Lock()
		c.answering = in
		c.mu.Unlock()
		code := s.deliverMessage(in)
		if code == 0 {
			code = 200
		}
		c.respondFR(m, code, reasonPhrase(code))
		c.answered()
	default: // accepted chunk, or '#' abort
		c.respondFR(m, 200, "OK")
	}
}

// failPending ends the Send of the message a failure REPORT names, if no response settled it yet: the REPORT
// is then its outcome (RFC 4975 §7.1.2: the endpoint, or a relay, could not deliver it), not the
// transaction timeout that would follow when the SEND's own response never comes. Responses to its
// transactions that come later are ignored.
func (c *conn) failPending(s *Session, r *Report) {
	var cbs []callback
	c.mu.Lock()
	if out := c.pending[pendingKey{s, r.MessageID}]; out != nil {
		c.log.Info("msrp: failure REPORT ends a pending send", "session", s.id, "message_id", r.MessageID, "status", r.StatusCode)
		cbs = c.finish(out, SendResult{StatusCode: r.StatusCode, Comment: r.Comment}, cbs)
	}
	c.mu.Unlock()
	runCallbacks(cbs)
	c.closeIfLingering()
}

// handleResponse matches a response to its transaction.
func (c *conn) handleResponse(m *Message) {
	var buf [1]callback // a response ends one Send at most: no allocation
	cbs := buf[:0]
	c.mu.Lock()
	t := c.txs[m.TransactionID]
	if t == nil {
		c.mu.Unlock()
		c.log.Debug("msrp: response for unknown transaction ignored", "tid", m.TransactionID, "code", m.StatusCode)
		return
	}
	delete(c.txs, m.TransactionID)
	if t.timer != nil {
		t.timer.Stop()
	}
	out := t.out
	if m.StatusCode == 200 {
		out.ok++
		if out.ok == out.chunks && out.fr == "yes" {
			cbs = c.finish(out, SendResult{StatusCode: 200, Comment: m.Comment}, cbs)
		}
	} else {
		cbs = c.finish(out, SendResult{StatusCode: m.StatusCode, Comment: m.Comment}, cbs)
	}
	c.mu.Unlock()
	runCallbacks(cbs)
	c.closeIfLingering()
}

// reasonPhrase returns the comment sent with a response code.
func reasonPhrase(code int) string {
	switch code {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 408:
		return "Timeout"
	case 413:
		return "Stop Sending"
	case 415:
		return "Unsupported Media Type"
	case 481:
		return "Session Does Not Exist"
	case 501:
		return "Unknown Method"
	case 506:
		return "Session Already Bound"
	}
	return "Error"
}

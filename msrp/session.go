package msrp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Errors callers branch on.
var (
	ErrQueueFull  = errors.New("msrp: connection write queue full")
	ErrNotBound   = errors.New("msrp: session not bound to a connection")
	ErrClosed     = errors.New("msrp: closed")
	ErrNoPeerPath = errors.New("msrp: session has no peer path")
	ErrConnLost   = errors.New("msrp: connection lost")
	// ErrPeerNotReading is why a connection was closed whose peer stopped reading while keeping it open: a
	// write on it made no progress for Config.TransactionTimeout. HandleClose's error wraps it (and ErrConnLost).
	ErrPeerNotReading = errors.New("msrp: peer does not read: a write made no progress within the transaction timeout")
	ErrUnsupported    = errors.New("msrp: unsupported transport")
)

// StatusError is a non-200 transaction response (or a 408 timeout) to a request we sent.
type StatusError struct {
	Code    int
	Comment string
}

func (e *StatusError) Error() string {
	return "msrp: peer answered " + strconv.Itoa(e.Code) + " " + e.Comment
}

// Handler receives a session's events. Calls for one session are never concurrent with each other
// (they are delivered from the connection's reader goroutine, in arrival order, under a per-session
// lock). They must not block for long: the connection's other sessions wait meanwhile.
type Handler interface {
	// HandleMessage gets each complete message (a single-chunk SEND, or all chunks reassembled; never an
	// aborted '#' or incomplete one). Bodiless SENDs (binding/keepalive) are answered 200 by the stack and
	// NOT passed here. The returned code is the transaction response to the SEND that completed the
	// message (200 to accept, 413/415/403/... to refuse), sent only if its Failure-Report allows a response
	// (yes/absent: any; partial: only non-200; no: none). Earlier chunks are answered 200 by the stack.
	HandleMessage(s *Session, m *Incoming) (code int)
	// HandleReport gets every REPORT received for this session (the stack never answers REPORTs). A failure
	// REPORT for a message whose Send is still pending has also ended that Send, with the REPORT's status;
	// REPORTs for other Message-IDs are passed as they are. That includes REPORTs about a message whose Send
	// ended 200 already: behind a relay the 200 only says the first hop took it (RFC 4976 §6.4.1), and its
	// fate is the REPORTs' (Outgoing.SuccessReport asks for the success one).
	HandleReport(s *Session, r *Report)
	// HandleClose is called once when the session's connection is lost (err wraps ErrConnLost, or is
	// ErrClosed when the endpoint closes) or the session is closed with Close (err == nil). A connection lost
	// while the relay on the peer's path forwards on another one is not the session's (connLost).
	HandleClose(s *Session, err error)
}

// KeepAliveHandler is what a Handler may also implement to learn of each bodiless SEND (a binding or a
// keep-alive), which the stack answers itself and never passes to HandleMessage.
type KeepAliveHandler interface {
	HandleKeepAlive(s *Session)
}

// Incoming is a complete received message.
type Incoming struct {
	MessageID     string
	ContentType   string
	Headers       []Header // MIME headers of the message (Content-ID, Content-Disposition, ...), Content-Type included
	Body          []byte
	SuccessReport bool
	FailureReport string // "yes", "partial", "no"
	FromPath      []URI
	Chunks        int
	// Received is when the last chunk arrived, with Config.RxTimestamps (zero without): the kernel's
	// receive time of the newest bytes read by then, so a little late when the same read brought more.
	Received time.Time
}

// Report is a received REPORT.
type Report struct {
	MessageID  string
	StatusCode int // from "Status: 000 NNN"
	Comment    string
	ByteRange  ByteRange // zero when the REPORT has none: it is about the whole message (one that does not parse is refused)
}

// SendResult is the outcome of a Send. StatusCode 0 with Err == nil means "written, no confirmation
// asked" (Failure-Report partial or no).
type SendResult struct {
	MessageID  string
	StatusCode int
	Comment    string
	Err        error
}

// Session is one MSRP session: our URI (routable from creation), the peer's path, and the connection it
// is bound to. It has no goroutine of its own.
type Session struct {
	e     *Endpoint
	id    string
	local URI
	path  []URI // []URI{local}, read only: what the session's own messages carry as From-Path
	h     Handler
	relay *Relay // the relay the session sits behind (Relay.NewSession), or nil; read only

	mu            sync.Mutex
	peer          []URI
	route         []URI // To-Path of our requests, and From-Path of the peer's: peer, after relay.usePath when behind one
	learned       []URI // From-Path of the request that bound us passively, used when peer is unknown
	conn          *conn
	via           []*conn // other connections the relay on the peer's path forwards the peer's requests on (acceptVia)
	bound         chan struct{}
	closed        bool
	closeNotified bool

	verify PeerVerifier // nil: every connection is good enough

	deliverMu sync.Mutex // serialises handler calls

	raMu sync.Mutex
	ra   reassembler
}

// LocalURI is our session URI, msrp[s]://advertise/<id>;tcp.
func (s *Session) LocalURI() URI { return s.local }

// LocalPath is what goes into SDP a=path: our URI, after the relays of a Relay's Use-Path when the session
// sits behind one, the farthest first (RFC 4976 §5.1: the peer reaches us through them in that order).
func (s *Session) LocalPath() []URI {
	if s.relay == nil {
		return []URI{s.local}
	}
	p := make([]URI, 0, len(s.relay.usePath)+1)
	for i := len(s.relay.usePath) - 1; i >= 0; i-- {
		p = append(p, s.relay.usePath[i])
	}
	return append(p, s.local)
}

// ID returns our session-id.
func (s *Session) ID() string { return s.id }

// SetPeerPath sets the peer's path from its SDP. When a later call changes the first hop, the session is
// unbound from its old connection (a dialled connection left without sessions is closed). Behind a relay
// the first hop is always the relay: our requests go to its Use-Path, then to p.
//
// A connection that bound the session passively before its peer's path was known (the peer's first SEND
// overtaking the SDP answer) was taken unchecked: nothing told who the peer was. It is checked now, as a
// binding after this call would be, and the session is unbound from it when it fails: with CheckFromPath,
// the From-Path it bound with must be p; the session's PeerVerifier (set before this call) must take it.
// Otherwise whoever connected first with the session's URI, seen in our SDP, would keep the session and get
// its messages, the peer's own connection getting 506, whatever the peer's a=path and a=fingerprint said.
func (s *Session) SetPeerPath(p []URI) {
	p = append([]URI(nil), p...)
	route := p
	if s.relay != nil && len(p) > 0 {
		route = append(append(make([]URI, 0, len(s.relay.usePath)+len(p)), s.relay.usePath...), p...)
	}
	s.mu.Lock()
	old := s.peer
	s.peer, s.route = p, route
	changed := s.relay == nil && s.conn != nil && len(old) > 0 && (len(p) == 0 || !old[0].Equal(p[0]))
	var early *conn // bound before the peer's path was known
	var learned []URI
	var wrongFrom bool
	if !changed && s.relay == nil && s.conn != nil && len(old) == 0 && len(p) > 0 {
		early, learned = s.conn, s.learned
		wrongFrom = s.e.cfg.CheckFromPath && !PathEqual(learned, route)
	}
	s.mu.Unlock()
	switch {
	case changed:
		s.unbind(nil)
	case early == nil:
	case wrongFrom:
		early.log.Warn("msrp: early binding dropped: its From-Path is not the peer's path", "session", s.id,
			"from", FormatPath(learned), "peer", FormatPath(route))
		s.e.refused(403, "From-Path of an early binding is not the peer path")
		s.unbind(early)
	default:
		if err := s.verifyPeer(early); err != nil {
			early.log.Warn("msrp: early binding dropped by the session's verifier", "session", s.id, "err", err)
			s.e.refused(403, "early binding refused by the session's verifier")
			s.unbind(early)
		}
	}
}

// PeerPath returns the peer's path as set by SetPeerPath.
func (s *Session) PeerPath() []URI {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]URI(nil), s.peer...)
}

// Bound returns a channel closed when the session is bound to a connection, by Connect or passively
// (the peer's first request naming this session on a connection it opened). After an unbind (connection
// lost, first hop changed) a new channel is returned.
func (s *Session) Bound() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Connect makes this side active: it reuses an existing connection to PeerPath()[0]'s authority (same
// scheme, host, port) or dials one (TLS for msrps), sends a bodiless SEND and returns when the peer
// answered it 200, or an error (dial failure, *StatusError for an error response or the 408 timeout,
// ctx.Err()). If the session is already bound it returns nil at once.
//
// Behind a relay the session is bound to the relay's connection from the start: Connect sends the bodiless
// SEND there, addressed through the relay to the peer, as the active party must (RFC 6135 §4.5), and returns
// when the relay answered it.
func (s *Session) Connect(ctx context.Context) error {
	if s.relay != nil {
		return s.announce(ctx)
	}
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.conn != nil {
			s.mu.Unlock()
			return nil
		}
		peer := s.peer
		s.mu.Unlock()
		if len(peer) == 0 {
			return ErrNoPeerPath
		}
		c, err := s.e.dial(ctx, peer[0])
		if err != nil {
			return err
		}
		if err := s.verifyPeer(c); err != nil {
			c.releaseIfIdle()
			return fmt.Errorf("%w: %s: %w", ErrPeerRejected, peer[0].Authority(), err)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.releaseIfIdle()
			return ErrClosed
		}
		if s.conn != nil { // bound passively meanwhile
			s.mu.Unlock()
			c.releaseIfIdle()
			return nil
		}
		if len(s.peer) == 0 || !s.peer[0].Equal(peer[0]) {
			// SetPeerPath moved the first hop while we dialled (it unbinds only a bound session): dial the new one.
			s.mu.Unlock()
			c.releaseIfIdle()
			if err := ctx.Err(); err != nil {
				return err
			}
			continue
		}
		if !c.addSession(s) {
			s.mu.Unlock()
			if attempt < 2 {
				continue // the reused connection just closed; dial again
			}
			return fmt.Errorf("%w: connection to %s closed while binding", ErrConnLost, peer[0].Authority())
		}
		s.conn = c
		close(s.bound)
		s.mu.Unlock()

		if err := s.sendEmpty(ctx, c, peer); err != nil {
			s.unbind(c)
			return err
		}
		return nil
	}
}

// announce is Connect behind a relay: the bodiless SEND on the relay's connection, which stays bound whatever
// the answer.
func (s *Session) announce(ctx context.Context) error {
	s.mu.Lock()
	c, closed, route := s.conn, s.closed, s.route
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case len(route) == 0:
		return ErrNoPeerPath
	case c == nil:
		return fmt.Errorf("%w: the connection to relay %s is lost", ErrConnLost, s.relay.uri.Authority())
	}
	return s.sendEmpty(ctx, c, route)
}

// sendEmpty sends a bodiless SEND to the path to on c and waits for its 200.
func (s *Session) sendEmpty(ctx context.Context, c *conn, to []URI) error {
	res := make(chan SendResult, 1)
	msgs := chunkMessage(&Outgoing{}, NewMessageID(), to, s.path, 0)
	if err := c.sendMsgs(s, msgs[0].Header(HdrMessageID), "yes", msgs, func(r SendResult) { res <- r }, nil); err != nil {
		return err
	}
	select {
	case r := <-res:
		if r.Err != nil {
			return r.Err
		}
		if r.StatusCode != 200 {
			return &StatusError{Code: r.StatusCode, Comment: r.Comment}
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unbind detaches the session from its connection (only from c when c != nil).
func (s *Session) unbind(c *conn) {
	s.mu.Lock()
	old := s.conn
	if old == nil || (c != nil && old != c) {
		s.mu.Unlock()
		return
	}
	s.conn = nil
	s.bound = make(chan struct{})
	via := s.takeViaLocked()
	s.mu.Unlock()
	old.removeSession(s)
	release(s, via)
}

// takeViaLocked forgets the session's via connections and returns them, for release once s.mu is unlocked.
func (s *Session) takeViaLocked() []*conn {
	via := s.via
	s.via = nil
	return via
}

// release unbinds s from connections (not under s.mu: removeSession takes the connection's lock).
func release(s *Session, conns []*conn) {
	for _, c := range conns {
		c.removeSession(s)
	}
}

// Send queues one message: chunked at Config.ChunkSize, new tid per chunk, same Message-ID, Byte-Range
// and '+'/'$'. It never blocks on the network: a full write queue gives ErrQueueFull, an unbound session
// ErrNotBound, a closed one ErrClosed. done (may be nil) is called exactly once, from a goroutine the
// stack owns, with the outcome: Failure-Report yes: the first non-200 response of any chunk, 200 when all
// chunks got 200, 408 when TransactionTimeout passed, Err when the connection was lost or the session
// closed; partial/no: StatusCode 0 when written (partial: or the first error response or failure REPORT if it
// came first).
// An error response, or a failure REPORT while the Send is pending, stops the remaining chunks (with a '#'
// abort frame if some were sent, except after a 413: RFC 4975 §10.5).
// The caller must not modify m.Body until done ran.
func (s *Session) Send(m *Outgoing, done func(SendResult)) error {
	s.mu.Lock()
	c, closed, peer := s.conn, s.closed, s.route
	if len(peer) == 0 {
		peer = s.learned
	}
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case c == nil || len(peer) == 0:
		return ErrNotBound
	}
	if m.Body != nil && m.ContentType == "" {
		return errors.New("msrp: Outgoing has a body but no ContentType")
	}
	id := m.MessageID
	if id == "" {
		id = NewMessageID()
	}
	fr := lowerASCII(m.FailureReport)
	if fr == "" {
		fr = "yes"
	}
	if fr != "yes" && fr != "no" && fr != "partial" {
		return fmt.Errorf("msrp: Failure-Report %q is not yes, no or partial", m.FailureReport)
	}
	return c.sendMsgs(s, id, fr, chunkMessage(m, id, peer, s.path, s.e.cfg.ChunkSize), done, nil)
}

// Report sends a REPORT for an incoming message as RFC 4975 §7.1.3/§7.1.4 allow: a success REPORT
// (code 200) only if m.SuccessReport; a failure REPORT only if m.FailureReport is yes or partial;
// otherwise it does nothing and returns nil. To-Path = m.FromPath, Byte-Range 1-N/N, Status 000 code.
func (s *Session) Report(m *Incoming, code int, comment string) error {
	if code == 200 && !m.SuccessReport {
		return nil
	}
	if code != 200 && m.FailureReport != "yes" && m.FailureReport != "partial" && m.FailureReport != "" {
		return nil
	}
	s.mu.Lock()
	c, closed := s.conn, s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if c == nil {
		return ErrNotBound
	}
	if len(m.FromPath) == 0 {
		return fmt.Errorf("msrp: REPORT for %q: message has no From-Path", m.MessageID)
	}
	n := int64(len(m.Body))
	status := "000 " + strconv.Itoa(code)
	if comment != "" {
		status += " " + comment
	}
	r := &Message{Method: MethodReport, ToPath: m.FromPath, FromPath: s.path, Flag: '$',
		Headers: []Header{{HdrMessageID, m.MessageID}, {HdrByteRange, ByteRange{1, n, n}.String()}, {HdrStatus, status}}}
	return c.sendMsgs(s, m.MessageID, "no", []*Message{r}, nil, m)
}

// Flush waits until everything queued on the session's connection so far has been written to it, and returns
// nil; or an error when the connection is lost or the session closed first, or ctx ends. It does not wait for
// responses. Close drops what is not written yet: Flush before it lets REPORTs and other messages that have
// no transaction leave. A REPORT made while its SEND's response waits for HandleMessage to return is written
// then, ahead of that response.
func (s *Session) Flush(ctx context.Context) error {
	s.mu.Lock()
	c, closed := s.conn, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case c == nil:
		return ErrNotBound
	}
	done := make(chan error, 1)
	if err := c.barrier(s, func(r SendResult) { done <- r.Err }); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close unroutes the session, fails its pending sends with ErrClosed, and calls HandleClose(s, nil)
// (both from another goroutine, so calling Close inside a handler or callback is safe). A dialled
// connection with no sessions left is closed. Do not call Endpoint.Close from a handler or callback:
// it waits for the goroutine that runs them.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	c := s.conn
	s.conn = nil
	via := s.takeViaLocked()
	notify := !s.closeNotified
	s.closeNotified = true
	s.mu.Unlock()
	release(s, via)
	s.e.removeSession(s)
	s.raMu.Lock()
	s.ra.reset()
	s.raMu.Unlock()
	var cbs []callback
	if c != nil {
		cbs = c.failSession(s, ErrClosed)
		c.removeSession(s)
	}
	if notify || len(cbs) > 0 {
		// Callbacks and HandleClose run on a goroutine of the stack, never inside the caller's Close.
		s.e.goTracked(func() {
			runCallbacks(cbs)
			if notify {
				s.deliverMu.Lock()
				defer s.deliverMu.Unlock()
				s.h.HandleClose(s, nil)
			}
		})
	}
}

// connLost is called by a connection's reader goroutine when the connection ended.
//
// A session whose bound connection ends while the relay on its peer's path still forwards the peer's requests
// on another one (via, acceptViaLocked) carries on over that one: the relay is there, and takes our requests on
// any connection. Kamailio closes a connection idle for its tcp_connection_lifetime, and the one we opened to
// it carries only what we send: it idles whenever the peer talks and we only answer, on the other.
func (s *Session) connLost(c *conn, err error) {
	s.mu.Lock()
	if s.conn != c {
		s.via = slices.DeleteFunc(s.via, func(v *conn) bool { return v == c })
		s.mu.Unlock()
		return
	}
	if len(s.via) > 0 {
		next := s.via[0]
		s.conn = next
		s.via = slices.Delete(s.via, 0, 1)
		s.mu.Unlock()
		c.log.Info("msrp: connection lost; the session carries on over the relay's other connection", "session", s.id,
			"err", err, "now", next.remote)
		return
	}
	s.conn = nil
	s.bound = make(chan struct{})
	via := s.takeViaLocked()
	notify := !s.closeNotified
	s.closeNotified = true
	s.mu.Unlock()
	release(s, via)
	s.raMu.Lock()
	s.ra.reset()
	s.raMu.Unlock()
	if notify {
		s.deliverMu.Lock()
		defer s.deliverMu.Unlock()
		s.h.HandleClose(s, err)
	}
}

// accept decides whether request m arriving on c may be processed for this session, binding it passively
// when it is not bound yet. It returns 0 or the error response code.
func (s *Session) accept(c *conn, m *Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 481
	}
	if s.e.cfg.CheckFromPath && len(s.route) > 0 && !fromPeer(m, s.route) {
		return 403
	}
	if s.conn == c {
		return 0
	}
	if s.conn != nil {
		return s.acceptViaLocked(c, m)
	}
	if s.relay != nil {
		return 481 // its relay's connection is lost, and no other may take its place
	}
	if s.verify != nil {
		// The verifier runs without our lock (it may look at its owner's state); then check again.
		s.mu.Unlock()
		err := s.verifyPeer(c)
		s.mu.Lock()
		if err != nil {
			c.log.Warn("msrp: binding refused by the session's verifier", "session", s.id, "err", err)
			return 403
		}
		switch {
		case s.closed:
			return 481
		case s.conn == c:
			return 0
		case s.conn != nil:
			return 506
		}
	}
	if !c.addSession(s) {
		return 481
	}
	s.conn = c
	s.learned = append([]URI(nil), m.FromPath...)
	close(s.bound)
	return 0
}

// takesFrom reports whether request m on c is for this session without binding it: c serves the session and,
// with CheckFromPath, m comes from its peer (accept, for a request that will not be processed).
func (s *Session) takesFrom(c *conn, m *Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.conn != c && !slices.Contains(s.via, c)) {
		return false
	}
	return !s.e.cfg.CheckFromPath || len(s.route) == 0 || fromPeer(m, s.route)
}

// acceptViaLocked decides on a request for the session, bound already, that came on another connection c: 506,
// unless the peer's path goes through a relay and the request comes from that path. A relay forwards requests
// towards our URI over a connection to its address, which need not be the one we opened to the relay: Kamailio's
// msrp module finds connections by address, and the one we opened it knows by our source port, so it opens a
// new one to our listener. Such a connection then serves the session too, for the peer's requests only (ours
// keep to the bound one), until either ends (the bound one ending, it takes its place: connLost); responses go
// back on the connection the request came on.
func (s *Session) acceptViaLocked(c *conn, m *Message) int {
	if slices.Contains(s.via, c) {
		if !fromPeer(m, s.route) {
			return 403
		}
		return 0
	}
	if s.relay != nil || len(s.route) < 2 || !fromPeer(m, s.route) {
		return 506
	}
	if s.verify != nil {
		s.mu.Unlock()
		err := s.verifyPeer(c)
		s.mu.Lock()
		if err != nil {
			c.log.Warn("msrp: relay's connection refused by the session's verifier", "session", s.id, "err", err)
			return 403
		}
		if s.closed || s.conn == nil {
			return 481
		}
		if s.conn == c || slices.Contains(s.via, c) {
			return 0
		}
	}
	if !c.addSession(s) {
		return 481
	}
	s.via = append(s.via, c)
	c.log.Info("msrp: relay on the peer's path forwards on another connection; taking its requests", "session", s.id,
		"from", FormatPath(m.FromPath))
	return 0
}

// fromPeer reports whether request m comes from the session's peer path: its From-Path is that path, or, for a
// REPORT, the start of it. A relay on the peer's path that cannot deliver one of our messages reports it in a
// REPORT of its own, whose From-Path ends with that relay (RFC 4976 §6.4.1, RFC 4975 §7.1.2: the REPORT's
// From-Path is its sender's URI, each relay before it adding itself).
func fromPeer(m *Message, peer []URI) bool {
	if m.Method == MethodReport && len(m.FromPath) > 0 && len(m.FromPath) < len(peer) {
		return PathEqual(m.FromPath, peer[:len(m.FromPath)])
	}
	return PathEqual(m.FromPath, peer)
}

// addChunk runs the reassembler for one SEND with a body.
func (s *Session) addChunk(m *Message, now time.Time) chunkResult {
	s.raMu.Lock()
	defer s.raMu.Unlock()
	s.ra.expire(now)
	return s.ra.add(m, now, s.e.raLimits)
}

func (s *Session) expirePartials(now time.Time) int {
	s.raMu.Lock()
	defer s.raMu.Unlock()
	return s.ra.expire(now)
}

func (s *Session) deliverMessage(in *Incoming) int {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	return s.h.HandleMessage(s, in)
}

func (s *Session) deliverReport(r *Report) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.h.HandleReport(s, r)
}

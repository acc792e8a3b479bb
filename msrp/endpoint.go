package msrp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/msrpgw/msrpgw/internal/rawio"
)

// Config configures an Endpoint. Zero values take the documented defaults.
type Config struct {
	ChunkSize          int           // outgoing chunk size, default 2048; chunks > 2048 use range-end '*' (§7.1.1)
	TransactionTimeout time.Duration // default 30s: no response to a SEND with Failure-Report yes -> result 408
	UnboundTimeout     time.Duration // default 30s: accepted connection whose first request never binds -> closed
	CheckFromPath      bool          // a request whose From-Path does not match the session's peer path gets 403; a REPORT may also come from a relay on it, its From-Path the start of it
	WriteQueue         int           // bounded per-connection write queue (frames), default 1024; full -> ErrQueueFull
	MaxMessageSize     int64         // reassembled message bound, default 32 KiB; larger -> 413
	MaxChunks          int           // chunks per message bound, default 1024 -> 413
	MaxPartial         int           // concurrent partial (reassembling) messages per session, default 16 -> 413
	MaxConns           int           // total connections (0 = unlimited); over -> refused and logged
	MaxConnsPerIP      int           // connections per remote IP (0 = unlimited)
	// KeepAlive (0 = off): a connection carrying sessions that nothing was written on for KeepAlive gets a
	// bodiless SEND of one of them (RFC 4975 §7.1), so that relays and middleboxes closing idle connections
	// keep it (Kamailio's tcp_connection_lifetime, NATs). The peer answers it; nobody sees it as a message.
	KeepAlive       time.Duration
	Limits          Limits       // reader limits; MaxChunkBytes defaults to MaxMessageSize here
	TLSConfig       *tls.Config  // server side for msrps listeners
	ClientTLSConfig *tls.Config  // for dialling msrps peers
	Logger          *slog.Logger // nil = discard
	// RxTimestamps sets Incoming.Received on every message: the kernel's receive time of the bytes that
	// completed it (SO_TIMESTAMPNS, Linux; read with recvmsg, a little dearer than read), else the time it
	// was parsed. For measuring latency (cmd/msrpgw-load); the gateway leaves it off.
	RxTimestamps bool
	// OnRefused, when set, is told of every request or connection the stack refuses on its own (connection
	// bounds, malformed requests, unknown methods, 481, 403, 506, chunk limits), so an application can count
	// them. code is the MSRP status sent, or that would be were the request not a REPORT (0 for a refused
	// connection, or one closed for a frame it cannot delimit). It is called from the stack's goroutines and
	// must not block.
	OnRefused func(code int, reason string)
}

func (c Config) withDefaults() Config {
	if c.ChunkSize <= 0 {
		c.ChunkSize = 2048
	}
	if c.TransactionTimeout <= 0 {
		c.TransactionTimeout = 30 * time.Second
	}
	if c.UnboundTimeout <= 0 {
		c.UnboundTimeout = 30 * time.Second
	}
	if c.WriteQueue <= 0 {
		c.WriteQueue = 1024
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 32 << 10
	}
	if c.MaxChunks <= 0 {
		c.MaxChunks = 1024
	}
	if c.MaxPartial <= 0 {
		c.MaxPartial = 16
	}
	if c.Limits.MaxChunkBytes <= 0 && c.MaxMessageSize < 1<<30 {
		// A bigger chunk could never be accepted, so do not buffer one (memory per connection stays small).
		c.Limits.MaxChunkBytes = int(c.MaxMessageSize)
	}
	c.Limits = c.Limits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Endpoint is an MSRP listener and dialer that routes incoming requests to sessions by the session-id of
// the first To-Path URI. Sessions have no goroutines; each connection has one reader and one writer.
type Endpoint struct {
	cfg      Config
	log      *slog.Logger
	raLimits reassemblyLimits
	quit     chan struct{}
	wg       sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	sessions  map[string]*Session
	conns     map[*conn]struct{}
	dialled   map[string]*conn
	dialing   map[string]*dialCall // dials under way, by reuse key: Connects to the same peer wait for it
	perIP     map[string]int
	listeners []net.Listener
	advHost   string
	advPort   int
	advSecure bool
	advSet    bool
	secureSet bool
}

// NewEndpoint returns an Endpoint; call Listen or Serve to accept connections, Close to release it.
func NewEndpoint(cfg Config) *Endpoint {
	cfg = cfg.withDefaults()
	e := &Endpoint{
		cfg: cfg,
		log: cfg.Logger,
		raLimits: reassemblyLimits{maxSize: cfg.MaxMessageSize, maxChunks: cfg.MaxChunks,
			maxPartial: cfg.MaxPartial, expiry: 2 * cfg.TransactionTimeout},
		quit:     make(chan struct{}),
		sessions: make(map[string]*Session),
		conns:    make(map[*conn]struct{}),
		dialled:  make(map[string]*conn),
		dialing:  make(map[string]*dialCall),
		perIP:    make(map[string]int),
	}
	e.wg.Add(1)
	go e.janitor()
	if cfg.KeepAlive > 0 {
		e.wg.Add(1)
		go e.keepAlive()
	}
	return e
}

// Listen opens a listener (TLS when secure, with Config.TLSConfig) and accepts on it in a goroutine the
// Endpoint owns. The first listener's address becomes the advertised one unless SetAdvertise was called.
func (e *Endpoint) Listen(network, addr string, secure bool) (net.Addr, error) {
	if secure && e.cfg.TLSConfig == nil {
		return nil, errors.New("msrp: secure listener needs Config.TLSConfig")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("msrp: listen %s %s: %w", network, addr, err)
	}
	ln = rawio.WrapListener(ln)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ln.Close()
		return nil, ErrClosed
	}
	e.wg.Add(1)
	e.mu.Unlock()
	addrOut := ln.Addr()
	e.register(ln, secure)
	go func() {
		defer e.wg.Done()
		if err := e.serve(ln, secure); err != nil {
			e.log.Error("msrp: accept loop ended", "addr", addrOut.String(), "err", err)
		}
	}()
	return addrOut, nil
}

// Serve accepts connections on ln until the Endpoint is closed (then it returns nil) or Accept fails.
// With secure, ln is wrapped in TLS with Config.TLSConfig.
func (e *Endpoint) Serve(ln net.Listener, secure bool) error {
	if secure && e.cfg.TLSConfig == nil {
		return errors.New("msrp: secure listener needs Config.TLSConfig")
	}
	e.register(ln, secure)
	return e.serve(ln, secure)
}

func (e *Endpoint) register(ln net.Listener, secure bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listeners = append(e.listeners, ln)
	first := len(e.listeners) == 1
	if first && !e.advSet {
		if ta, ok := ln.Addr().(*net.TCPAddr); ok {
			e.advHost = ta.IP.String()
			e.advPort = ta.Port
		} else if h, p, err := net.SplitHostPort(ln.Addr().String()); err == nil {
			e.advHost = h
			e.advPort, _ = strconv.Atoi(p)
		}
	}
	if first && !e.secureSet {
		e.advSecure = secure
	}
}

func (e *Endpoint) serve(ln net.Listener, secure bool) error {
	if e.isClosed() {
		_ = ln.Close()
		return nil
	}
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if e.isClosed() {
				return nil
			}
			if !acceptRetryable(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			e.log.Warn("msrp: accept failed, retrying", "addr", ln.Addr().String(), "err", err, "after", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if secure {
			nc = tls.Server(nc, e.cfg.TLSConfig)
		}
		c := newConn(e, nc, "")
		if err := e.addConn(c); err != nil {
			c.log.Warn("msrp: connection refused", "err", err)
			e.refused(0, err.Error())
			_ = nc.Close()
			continue
		}
		c.mu.Lock()
		c.unbound = time.AfterFunc(e.cfg.UnboundTimeout, c.unboundExpired)
		c.mu.Unlock()
		c.log.Debug("msrp: connection accepted")
		c.start()
	}
}

// acceptRetryable reports whether Accept failed for a passing reason: a timeout, or the process or system out of
// descriptors or memory for a moment (a flood of connections). The listener then carries on once they are free
// again instead of ending for good.
func acceptRetryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// addConn registers c (and does wg.Add for its two goroutines) unless a limit or Close refuses it.
func (e *Endpoint) addConn(c *conn) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.cfg.MaxConns > 0 && len(e.conns) >= e.cfg.MaxConns {
		return fmt.Errorf("msrp: %d connections, limit %d", len(e.conns), e.cfg.MaxConns)
	}
	if e.cfg.MaxConnsPerIP > 0 && e.perIP[c.ip] >= e.cfg.MaxConnsPerIP {
		return fmt.Errorf("msrp: %d connections from %s, limit %d", e.perIP[c.ip], c.ip, e.cfg.MaxConnsPerIP)
	}
	e.conns[c] = struct{}{}
	e.perIP[c.ip]++
	if c.key != "" {
		e.dialled[c.key] = c
	}
	e.wg.Add(2)
	return nil
}

func (e *Endpoint) removeConn(c *conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.conns[c]; !ok {
		return
	}
	delete(e.conns, c)
	if e.perIP[c.ip]--; e.perIP[c.ip] <= 0 {
		delete(e.perIP, c.ip)
	}
	if c.key != "" && e.dialled[c.key] == c {
		delete(e.dialled, c.key)
	}
}

// dial returns the live dialled connection for u's scheme/host/port, or dials one. Connects to a peer that
// come while a connection to it is being dialled wait for that one (RFC 4975 §5.4: reuse) instead of opening
// more: many sessions set up at once to one peer share one connection from the start. A waiter whose dial
// was given up by its dialler (that caller's context ended) dials itself.
func (e *Endpoint) dial(ctx context.Context, u URI) (*conn, error) {
	if u.Transport != "tcp" {
		return nil, fmt.Errorf("%w %q in %s", ErrUnsupported, u.Transport, u.String())
	}
	if u.Port == 0 {
		// Nothing to dial: 2855 is no default (RFC 4975 §6), and DNS SRV for relays (RFC 4976) is not done.
		return nil, fmt.Errorf("msrp: dial %s: %w", u.String(), ErrNoPort)
	}
	key := u.connKey()
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrClosed
		}
		if c := e.dialled[key]; c != nil && !c.isClosed() {
			e.mu.Unlock()
			return c, nil
		}
		if d := e.dialing[key]; d != nil {
			e.mu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("msrp: dial %s: %w", u.String(), ctx.Err())
			}
			if d.err != nil && !d.givenUp {
				return nil, d.err
			}
			continue // dialled (take it from e.dialled, or dial again if it closed already), or given up
		}
		d := &dialCall{done: make(chan struct{})}
		e.dialing[key] = d
		e.mu.Unlock()

		c, err := e.dialNew(ctx, u, key)
		e.mu.Lock()
		delete(e.dialing, key)
		e.mu.Unlock()
		d.err, d.givenUp = err, err != nil && ctx.Err() != nil
		close(d.done)
		return c, err
	}
}

// dialCall is a dial under way; done is closed when it ended, with err.
type dialCall struct {
	done    chan struct{}
	err     error
	givenUp bool // err came from the dialler's own context ending: another caller may still dial
}

// dialNew opens a new connection to u and adds it as the one dialled for key.
func (e *Endpoint) dialNew(ctx context.Context, u URI, key string) (*conn, error) {
	nc, err := e.dialNet(ctx, u)
	if err != nil {
		return nil, err
	}
	c := newConn(e, nc, key)
	if err := e.addConn(c); err != nil {
		_ = nc.Close()
		return nil, err
	}
	c.log.Debug("msrp: connection dialled")
	c.start()
	return c, nil
}

// dialNet opens a TCP connection to u's authority, with TLS for msrps (Config.ClientTLSConfig).
func (e *Endpoint) dialNet(ctx context.Context, u URI) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Authority())
	if err != nil {
		return nil, fmt.Errorf("msrp: dial %s: %w", u.String(), err)
	}
	nc = rawio.WrapConn(nc)
	if !u.Secure {
		return nc, nil
	}
	cfg := e.cfg.ClientTLSConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = u.Host
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("msrp: dial %s: %w", u.String(), err)
	}
	return tc, nil
}

// SetAdvertise sets the host and port put in local session URIs of sessions created afterwards (default:
// the first listener's address, which is useless when listening on 0.0.0.0: set it then).
func (e *Endpoint) SetAdvertise(host string, port int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advHost, e.advPort, e.advSet = host, port, true
}

// SetAdvertiseSecure chooses msrps (true) or msrp for local session URIs (default: whether the first
// listener is secure).
func (e *Endpoint) SetAdvertiseSecure(secure bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.advSecure, e.secureSet = secure, true
}

// fallbackURI addresses responses to requests whose paths could not be parsed.
func (e *Endpoint) fallbackURI() URI {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.advHost
	if h == "" {
		h = "invalid"
	}
	return URI{Secure: e.advSecure, Host: h, Port: e.advPort, Transport: "tcp"}
}

// NewSession creates a session with a fresh session-id; it is routable at once.
func (e *Endpoint) NewSession(h Handler) *Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &Session{e: e, h: h, bound: make(chan struct{})}
	for {
		s.id = NewSessionID()
		if e.sessions[s.id] == nil {
			break
		}
	}
	s.local = URI{Secure: e.advSecure, Host: e.advHost, Port: e.advPort, SessionID: s.id, Transport: "tcp"}
	s.path = []URI{s.local}
	if e.closed {
		s.closed = true
		return s
	}
	e.sessions[s.id] = s
	return s
}

func (e *Endpoint) lookup(id string) *Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[id]
}

func (e *Endpoint) removeSession(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sessions[s.id] == s {
		delete(e.sessions, s.id)
	}
}

// NumConns returns the number of open connections.
func (e *Endpoint) NumConns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// NumSessions returns the number of routable sessions.
func (e *Endpoint) NumSessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// goTracked runs f in a goroutine Close waits for (inline once the endpoint is closed).
func (e *Endpoint) goTracked(f func()) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		f()
		return
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// janitor drops stale partial messages (no goroutine or timer per message) and closes connections whose peer
// stopped reading (closeStalled); it looks every TransactionTimeout/2.
func (e *Endpoint) janitor() {
	defer e.wg.Done()
	period := max(e.raLimits.expiry/4, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-e.quit:
			return
		case now := <-t.C:
			e.mu.Lock()
			ss := make([]*Session, 0, len(e.sessions))
			for _, s := range e.sessions {
				ss = append(ss, s)
			}
			e.mu.Unlock()
			for _, s := range ss {
				if n := s.expirePartials(now); n > 0 {
					e.log.Info("msrp: dropped stale partial messages", "session", s.id, "count", n)
				}
			}
			e.closeStalled(now)
		}
	}
}

// closeStalled closes the connections on which a write made no progress for TransactionTimeout.
func (e *Endpoint) closeStalled(now time.Time) {
	e.mu.Lock()
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	limit := now.Add(-e.cfg.TransactionTimeout).UnixNano()
	for _, c := range conns {
		c.closeStalled(limit)
	}
}

// keepAlive sends Config.KeepAlive's bodiless SENDs. It looks at every connection each KeepAlive/2: one
// nothing was written on since the last look gets one, so none stays quiet for longer than KeepAlive.
func (e *Endpoint) keepAlive() {
	defer e.wg.Done()
	t := time.NewTicker(max(e.cfg.KeepAlive/2, 1)) // 1 ns: NewTicker takes no 0
	defer t.Stop()
	for {
		select {
		case <-e.quit:
			return
		case <-t.C:
			e.mu.Lock()
			conns := make([]*conn, 0, len(e.conns))
			for c := range e.conns {
				conns = append(conns, c)
			}
			e.mu.Unlock()
			for _, c := range conns {
				c.keepAlive()
			}
		}
	}
}

// Close closes listeners and connections, calls HandleClose(s, ErrClosed) for every session not yet
// notified, and returns when every goroutine and timer of the Endpoint is released.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	lns := e.listeners
	conns := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		conns = append(conns, c)
	}
	e.mu.Unlock()
	close(e.quit)
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range conns {
		c.close(ErrClosed)
	}
	e.wg.Wait()
	e.mu.Lock()
	ss := make([]*Session, 0, len(e.sessions))
	for _, s := range e.sessions {
		ss = append(ss, s)
	}
	e.sessions = map[string]*Session{}
	e.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		notify := !s.closeNotified
		s.closeNotified, s.closed = true, true
		s.mu.Unlock()
		if notify {
			s.deliverMu.Lock()
			s.h.HandleClose(s, ErrClosed)
			s.deliverMu.Unlock()
		}
	}
	return nil
}

// refused reports a refusal to Config.OnRefused.
func (e *Endpoint) refused(code int, reason string) {
	if e.cfg.OnRefused != nil {
		e.cfg.OnRefused(code, reason)
	}
}

package testpeer

import (
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/msrp"
)

// Relay is a minimal MSRP relay (RFC 4976 §6.4, without AUTH) for tests of a session-mode client behind one,
// as behind Kamailio's msrp module. A Client whose ClientConfig.Relay (or SetRelay) names it advertises the
// relay's URI before its own in a=path, so the gateway connects to the relay and addresses its SENDs to
// "relay client".
//
// Each request whose To-Path starts with the relay's URI is forwarded to the next URI, over the connection that
// node came from or a new one to it, with a new transaction id, the relay's URI taken off To-Path and put in
// front of From-Path. A SEND is answered 200 at once (with Failure-Report yes or absent): a relay's 200 says
// "I have it", never "delivered". A forwarded SEND's error response becomes a failure REPORT to the SEND's
// sender, from the relay. REPORTs are forwarded as any request, so the client's REPORTs reach the gateway.
//
// It listens on an ephemeral 127.0.0.1 port and dials only the URIs of the paths it is given; everything is
// released through the test's Cleanup.
type Relay struct {
	// URI is the relay's URI for the session, msrp://127.0.0.1:PORT/ID;tcp.
	URI msrp.URI

	t   testing.TB
	ln  net.Listener
	tls *tls.Config // msrps (NewTLSRelay): what it listens with; nil: plain msrp
	log *slog.Logger
	wg  sync.WaitGroup

	sends chan *msrp.Message

	mu        sync.Mutex
	conns     map[string]*relayConn // by the authority of the node at the other end
	forwarded map[string]forwarded  // transaction id of a SEND forwarded and not answered yet
	closed    bool
	failure   int           // answer SENDs 200, then report this failure instead of forwarding them (0: forward)
	drop      bool          // REPORTs are not forwarded
	delay     time.Duration // REPORTs are forwarded this much later
	hold      time.Duration // SENDs are answered this much later (forwarded at once)
}

// forwarded is a SEND the relay forwarded: the request as it came, and the connection it came on.
type forwarded struct {
	req  *msrp.Message
	from *relayConn
}

// relayConn is one of the relay's connections; writes are whole frames, one at a time.
type relayConn struct {
	nc  net.Conn
	wmu sync.Mutex
}

func (c *relayConn) write(m *msrp.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return msrp.WriteMessage(c.nc, m)
}

// NewRelay starts a relay on an ephemeral 127.0.0.1 port.
func NewRelay(t testing.TB) *Relay {
	t.Helper()
	return newRelay(t, nil)
}

// NewTLSRelay starts an msrps relay on an ephemeral 127.0.0.1 port: it listens with server, and its
// connections to msrps next hops show server's certificate and do not check theirs.
func NewTLSRelay(t testing.TB, server *tls.Config) *Relay {
	t.Helper()
	return newRelay(t, server)
}

func newRelay(t testing.TB, server *tls.Config) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: relay listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	scheme := "msrp"
	if server != nil {
		ln, scheme = tls.NewListener(ln, server), "msrps"
	}
	u, err := msrp.ParseURI(scheme + "://127.0.0.1:" + strconv.Itoa(port) + "/" + msrp.NewSessionID() + ";tcp")
	if err != nil {
		t.Fatalf("testpeer: relay URI: %v", err)
	}
	r := &Relay{
		URI: u, t: t, ln: ln, tls: server, log: Logger(t).With("who", "relay"),
		sends: make(chan *msrp.Message, 1024), conns: make(map[string]*relayConn), forwarded: make(map[string]forwarded),
	}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

// SetReportFailure makes the relay answer each SEND with a body 200 and then, instead of forwarding it, send
// its sender a failure REPORT with this status from itself, as a relay whose next hop does not answer does
// (408, RFC 4976 §6.4.1). 0 forwards again.
func (r *Relay) SetReportFailure(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failure = code
}

// SetDropReports makes the relay drop the REPORTs it would forward (true) or forward them again (false).
func (r *Relay) SetDropReports(drop bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop = drop
}

// SetReportDelay makes the relay forward each REPORT d after it came (0: at once).
func (r *Relay) SetReportDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// SetAnswerDelay makes the relay answer each SEND d after it came, while it forwards the SEND at once (0:
// answer at once): REPORTs about a message may then come before the relay's 200.
func (r *Relay) SetAnswerDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = d
}

// Sends is the queue of SENDs with a body the relay received, as they came (before forwarding).
func (r *Relay) Sends() <-chan *msrp.Message { return r.sends }

// Close stops the relay: its listener and every connection it has, as a relay that goes away does. The test's
// Cleanup does it too.
func (r *Relay) Close() { r.close() }

func (r *Relay) close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = map[string]*relayConn{}
	r.mu.Unlock()
	r.ln.Close()
	for _, c := range conns {
		c.nc.Close()
	}
	r.wg.Wait()
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		nc, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.serve(&relayConn{nc: nc}) {
			return
		}
	}
}

// serve reads c's frames on a goroutine of the relay's; false when the relay is closed.
func (r *Relay) serve(c *relayConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.nc.Close()
		return false
	}
	// Known by its remote address until a request says which node it is; closed with the relay either way.
	r.conns["conn "+c.nc.RemoteAddr().String()] = c
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer c.nc.Close()
		rd := msrp.NewReader(c.nc, msrp.Limits{})
		for {
			m, err := rd.ReadMessage()
			if err != nil {
				return
			}
			r.handle(c, m)
		}
	}()
	return true
}

func (r *Relay) handle(c *relayConn, m *msrp.Message) {
	if !m.IsRequest() {
		r.answered(m)
		return
	}
	if len(m.ToPath) < 2 || !m.ToPath[0].Equal(r.URI) || len(m.FromPath) == 0 {
		r.log.Info("relay: request not for us", "method", m.Method, "to", msrp.FormatPath(m.ToPath))
		if m.Method == msrp.MethodSend {
			r.respond(c, m, 481, "Session Does Not Exist")
		}
		return
	}
	r.mu.Lock()
	r.conns[m.FromPath[0].Authority()] = c // responses and REPORTs for that node go back this way
	failure, drop, delay, hold := r.failure, r.drop, r.delay, r.hold
	r.mu.Unlock()
	if m.Method == msrp.MethodSend {
		switch {
		case m.FailureReport() != "yes":
		case hold > 0:
			r.wg.Add(1)
			time.AfterFunc(hold, func() {
				defer r.wg.Done()
				r.respond(c, m, 200, "OK")
			})
		default:
			r.respond(c, m, 200, "OK")
		}
		if m.Body != nil {
			select {
			case r.sends <- m:
			default:
			}
			if failure != 0 {
				r.report(c, m, failure)
				return
			}
		}
	}
	if m.Method == msrp.MethodReport {
		if drop {
			r.log.Debug("relay: REPORT dropped", "message_id", m.MessageID())
			return
		}
		if delay > 0 {
			r.wg.Add(1)
			time.AfterFunc(delay, func() {
				defer r.wg.Done()
				r.forward(c, m)
			})
			return
		}
	}
	r.forward(c, m)
}

// forward sends m, which came on from, on to the next hop.
func (r *Relay) forward(from *relayConn, m *msrp.Message) {
	fw := *m
	fw.TransactionID = msrp.NewTransactionID()
	fw.ToPath = m.ToPath[1:]
	fw.FromPath = append([]msrp.URI{r.URI}, m.FromPath...)
	next, err := r.connTo(fw.ToPath[0])
	if err != nil {
		r.log.Info("relay: next hop unreachable", "to", fw.ToPath[0].String(), "err", err)
		if m.Method == msrp.MethodSend {
			r.report(from, m, 408)
		}
		return
	}
	if m.Method == msrp.MethodSend && m.FailureReport() != "no" {
		r.mu.Lock()
		r.forwarded[fw.TransactionID] = forwarded{req: m, from: from}
		r.mu.Unlock()
	}
	if err := next.write(&fw); err != nil {
		r.log.Info("relay: forwarding failed", "to", fw.ToPath[0].String(), "err", err)
	}
}

// answered takes the response to a SEND the relay forwarded: an error goes back to the SEND's sender as a
// failure REPORT (RFC 4976 §6.4.1); a 200 ends the hop's transaction.
func (r *Relay) answered(res *msrp.Message) {
	r.mu.Lock()
	f, ok := r.forwarded[res.TransactionID]
	delete(r.forwarded, res.TransactionID)
	r.mu.Unlock()
	if ok && res.StatusCode != 200 {
		r.report(f.from, f.req, res.StatusCode)
	}
}

// connTo returns the connection to the node of u: the one it came from, or a new one.
func (r *Relay) connTo(u msrp.URI) (*relayConn, error) {
	r.mu.Lock()
	c := r.conns[u.Authority()]
	r.mu.Unlock()
	if c != nil {
		return c, nil
	}
	nc, err := net.DialTimeout("tcp", u.Authority(), WaitFor)
	if err != nil {
		return nil, err
	}
	if u.Secure {
		conf := &tls.Config{InsecureSkipVerify: true} // a test relay: the gateway's self-signed certificate
		if r.tls != nil {
			conf.Certificates = r.tls.Certificates
		}
		tc := tls.Client(nc, conf)
		tc.SetDeadline(time.Now().Add(WaitFor))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		nc = tc
	}
	c = &relayConn{nc: nc}
	if !r.serve(c) {
		return nil, net.ErrClosed
	}
	r.mu.Lock()
	r.conns[u.Authority()] = c
	r.mu.Unlock()
	return c, nil
}

// respond answers request m on c, hop by hop: To-Path is the previous hop, From-Path the relay.
func (r *Relay) respond(c *relayConn, m *msrp.Message, code int, comment string) {
	res := &msrp.Message{TransactionID: m.TransactionID, StatusCode: code, Comment: comment,
		ToPath: m.FromPath[:1], FromPath: []msrp.URI{r.URI}}
	if err := c.write(res); err != nil {
		r.log.Debug("relay: response not written", "err", err)
	}
}

// report sends the sender of SEND m, over c, a failure REPORT from the relay, when its Failure-Report asks
// for one.
func (r *Relay) report(c *relayConn, m *msrp.Message, code int) {
	if fr := m.FailureReport(); fr != "yes" && fr != "partial" {
		return
	}
	br := m.Header(msrp.HdrByteRange)
	if br == "" {
		br = "1-" + strconv.Itoa(len(m.Body)) + "/" + strconv.Itoa(len(m.Body))
	}
	rep := &msrp.Message{Method: msrp.MethodReport, TransactionID: msrp.NewTransactionID(), Flag: '$',
		ToPath: m.FromPath, FromPath: []msrp.URI{r.URI},
		Headers: []msrp.Header{{Name: msrp.HdrMessageID, Value: m.MessageID()}, {Name: msrp.HdrByteRange, Value: br},
			{Name: msrp.HdrStatus, Value: "000 " + strconv.Itoa(code) + " reported by the relay"}}}
	if err := c.write(rep); err != nil {
		r.log.Debug("relay: REPORT not written", "err", err)
	}
}

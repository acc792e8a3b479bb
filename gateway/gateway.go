package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/rawio"
	"github.com/msrpgw/msrpgw/msrp"
)

// Options are what a Go program may supply besides the configuration.
type Options struct {
	// Router decides keys, content types and MESSAGE-side coordinates. Nil: the config's templates.
	Router Router
	// Events receives session and message events (metrics, webhooks). Nil: none.
	Events event.Sink
	// Logger for the gateway. Nil: discard.
	Logger *slog.Logger
	// Table holds the sessions. Nil: in memory.
	Table SessionTable
}

// Gateway is a SIP MESSAGE ⇄ MSRP gateway: a back-to-back user agent on the SIP side and an MSRP endpoint on
// the session side.
type Gateway struct {
	cfg    *config.Config
	router Router
	log    *slog.Logger
	events event.Sink
	table  SessionTable

	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	dialogUA *sipgo.DialogUA
	contact  sip.ContactHeader
	proxy    *sip.Uri
	msrp     *msrp.Endpoint

	dialogs sync.Map // dialog key -> *Session, for in-dialog requests (ACK, BYE, re-INVITE)
	forks   sync.Map // *sip.Request, an INVITE of ours being sent -> *forkWatch (indialog.go)
	parser  *sip.Parser
	// udpListeners maps each UDP listener's local address to its socket: MESSAGEs arriving there are taken
	// straight from the transport and answered through it (udpintake.go). Set once, before serving.
	udpListeners atomic.Pointer[map[netip.AddrPort]*udpListener]
	udpc         *udpClient // sends generated MESSAGEs over UDP (udpclient.go); set before serving
	sipConns     *sipConns  // bounds the SIP TCP and TLS connections accepted (sipconns.go)
	out          *sipOut
	recent       *recentRequests
	limits       *limiter

	ctx      context.Context
	cancel   context.CancelFunc
	bg       background    // every goroutine the gateway starts
	handlers chan struct{} // bounds concurrent SIP handlers
	workers  *workerPool   // runs the handlers on goroutines whose stacks have grown already
	draining atomic.Bool
	started  atomic.Bool  // Start was called
	serving  atomic.Bool  // Start succeeded: every listener is open
	inflight atomic.Int64 // SIP handlers still holding a transaction
	byes     atomic.Int64 // BYEs still on their way
	// beforeACK, when set (by a test, before Start), runs as a setup is about to ACK its INVITE's 2xx.
	beforeACK func(*Session)

	mu        sync.Mutex
	sipAddrs  map[string]string // network -> actual listen address
	closers   []io.Closer
	msrpLocal string
	msrpTLS   *msrpTLS         // set by startMSRP
	sipCert   *tls.Certificate // sip.tls.cert/key, loaded once by startSIP; nil when not configured
	auth      *inboundAuth     // sip.auth; nil: inbound requests are not authenticated
	// notifyHeaders are the headers the notification templates read, which every MESSAGE must carry.
	notifyHeaders []notifyHeader
}

// New builds a gateway from a validated configuration. It does not listen until Start.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if cfg == nil {
		return nil, errors.New("gateway: nil config")
	}
	g := &Gateway{
		cfg:      cfg,
		router:   opts.Router,
		log:      opts.Logger,
		events:   opts.Events,
		table:    opts.Table,
		sipAddrs: make(map[string]string),
	}
	if g.log == nil {
		g.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if g.events == nil {
		g.events = event.Sinks(nil)
	}
	if g.table == nil {
		g.table = newMemTable()
	}
	var err error
	if g.notifyHeaders, err = notifyHeaders(cfg); err != nil {
		return nil, err
	}
	if f, ok := g.router.(RouterFuncs); ok && (f.Message == nil || f.Invite == nil) {
		return nil, errors.New("gateway: RouterFuncs needs both Message and Invite (a refusal is a *Refusal error)")
	}
	if g.router == nil {
		r, err := NewTemplateRouter(cfg)
		if err != nil {
			return nil, err
		}
		g.router = r
	}
	if p := cfg.SIP.OutboundProxy; p != "" {
		var u sip.Uri
		if err := sip.ParseUri(p, &u); err != nil {
			return nil, fmt.Errorf("sip.outbound_proxy %q: %w", p, err)
		}
		u.UriParams = withLR(u.UriParams)
		g.proxy = &u
	}
	auth, err := newInboundAuth(cfg.SIP.Auth.Realm, cfg.SIP.Auth.UsersFile)
	if err != nil {
		return nil, err
	}
	g.auth = auth
	limit := cfg.Limits.MaxSIPHandlers
	if limit <= 0 {
		limit = 10000
	}
	g.handlers = make(chan struct{}, limit)
	g.workers = newWorkerPool()
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.out = newSIPOut(g)
	g.recent = newRecentRequests()
	g.limits = newLimiter(cfg.Limits)
	return g, nil
}

func withLR(p sip.HeaderParams) sip.HeaderParams {
	if p == nil {
		p = sip.NewParams()
	}
	if !p.Has("lr") {
		p.Add("lr", "")
	}
	return p
}

// Start opens the SIP and MSRP listeners and starts serving. It returns once every listener is open.
func (g *Gateway) Start() error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("gateway: already started")
	}
	if err := g.startMSRP(); err != nil {
		return err
	}
	if err := g.startSIP(); err != nil {
		g.msrp.Close()
		return err
	}
	g.serving.Store(true)
	g.log.Info("gateway started", "sip", g.SIPAddrs(), "msrp", g.msrpLocal, "contact", g.contact.Address.String())
	return nil
}

func (g *Gateway) startMSRP() error {
	mc := g.cfg.MSRP
	secure, hostport, err := mc.ListenAddr()
	if err != nil {
		return err
	}
	mt, err := loadMSRPTLS(mc.TLS, g.log)
	if err != nil {
		return err
	}
	g.msrpTLS = mt
	lim := g.cfg.Limits
	ep := msrp.NewEndpoint(msrp.Config{
		ChunkSize:          mc.ChunkSize,
		TransactionTimeout: mc.TransactionTimeout,
		UnboundTimeout:     mc.UnboundTimeout,
		CheckFromPath:      mc.CheckFromPath,
		KeepAlive:          mc.KeepAlive,
		MaxMessageSize:     g.cfg.Gateway.MaxMessageSize,
		MaxChunks:          lim.MaxChunksPerMessage,
		MaxPartial:         lim.MaxPartialPerSession,
		MaxConns:           lim.MaxConns,
		MaxConnsPerIP:      lim.MaxConnsPerSource,
		Limits:             msrp.Limits{MaxHeaderBytes: lim.MaxHeaderBytes},
		TLSConfig:          mt.server,
		ClientTLSConfig:    mt.client,
		Logger:             g.log.With("component", "msrp"),
		OnRefused: func(code int, reason string) {
			g.publish(event.Event{Kind: event.RequestRefused, Code: code, Reason: "msrp: " + reason})
		},
	})
	if secure && mt.server == nil {
		ep.Close()
		return fmt.Errorf("msrp.listen %s: msrps:// needs msrp.tls.cert and msrp.tls.key", mc.Listen)
	}
	addr, err := ep.Listen("tcp", hostport, secure)
	if err != nil {
		return fmt.Errorf("msrp.listen %s: %w", mc.Listen, err)
	}
	host, portStr, _ := net.SplitHostPort(addr.String())
	port, _ := strconv.Atoi(portStr)
	if adv := mc.Advertise; adv != "" {
		h, p, err := net.SplitHostPort(adv)
		if err != nil {
			ep.Close()
			return fmt.Errorf("msrp.advertise %q: %w", adv, err)
		}
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			ep.Close()
			return fmt.Errorf("msrp.advertise %q: bad port", adv)
		}
	}
	ep.SetAdvertise(host, port)
	g.msrp = ep
	g.msrpLocal = addr.String()
	return nil
}

func (g *Gateway) startSIP() error {
	sipLog := g.log.With("component", "sip")
	// One load of sip.tls.cert for the tls listeners and the client side: its validity is logged once.
	if tc := g.cfg.SIP.TLS; tc.Cert != "" && tc.Key != "" {
		cert, err := loadCertificate("sip.tls", tc, g.log)
		if err != nil {
			return err
		}
		g.sipCert = &cert
	}
	clientTLS, err := sipClientTLS(g.cfg.SIP.TLS, g.sipCert)
	if err != nil {
		return err
	}
	// One parser for sipgo's transports and the gateway's own UDP intake (udpintake.go).
	g.parser = newSIPParser()
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("msrpgw"),
		sipgo.WithUserAgentParser(g.parser),
		sipgo.WithUserAgenTLSConfig(clientTLS), // requests to sips: URIs and ;transport=tls
		// A stream connection (TCP, TLS) that closes ends the transactions it carried at once, as a transport
		// failure (RFC 3261 §17.1.4, §8.1.3.1: treated as 503), instead of at Timer F or B (32 s). A response can
		// no longer come back on that connection, and the gateway sends one MESSAGE at a time per destination
		// (RFC 3428 §8): without this, a proxy's restart held every later MESSAGE to a destination for 32 s,
		// the outstanding one then failing with 408 (a MESSAGE-first INVITE likewise fails its setup with 503 at
		// once, setup.go, instead of at setup_timeout). sipgo applies it to server transactions too, which is safe
		// here: an INVITE server transaction that sent its 2xx is in the Accepted state, which ignores a
		// transport error (RFC 6026 §7.1), so the 2xx-until-ACK handling of RespondSDP and respondReinvite goes
		// on as before (an ACK on a new connection still confirms the dialog, TestInvite200ConnClosedBeforeAck;
		// one later than T1 meets sipgo's first 2xx retransmission failing on the closed connection, with or
		// without this); any other server transaction on the closed connection could only send its response on
		// that connection, whose write fails anyway. The price: a request the gateway sent on a connection the
		// peer had opened (its Via then names our listening port) is failed when the peer closes it, though the
		// peer may still answer on a new connection (RFC 3261 §18.2.2); that answer finds no transaction. On the
		// connections the gateway dials, the usual case, Via names the connection's own port and no answer can
		// come another way.
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog), sip.WithTransactionLayerTerminateOnConnClose()),
		// Parse errors (e.g. a TCP message over the parse limit, dropped with its connection) go to our log.
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog), sip.WithTransportLayerReadFilter(g.takeUDP)),
	)
	if err != nil {
		return err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		ua.Close()
		return err
	}
	g.ua, g.srv = ua, srv
	g.registerHandlers()

	opened, err := g.openSIPListeners()
	if err != nil {
		ua.Close()
		return err
	}
	var serves []func() error
	udp := make(map[netip.AddrPort]*udpListener)
	for _, o := range opened {
		g.track(o.network, o.addr, o.closer)
		serves = append(serves, o.serve)
		if o.pc != nil {
			udp[addrPort(o.pc.LocalAddr())] = &udpListener{conn: &sip.UDPConnection{PacketConn: o.pc, Listener: true}}
		}
	}
	g.udpListeners.Store(&udp)
	// The Contact names a plain (udp/tcp) listener when there is one: a tls one would need ;transport=tls.
	first := opened[0]
	for _, o := range opened {
		if o.network != "tls" {
			first = o
			break
		}
	}
	firstHost, p, _ := net.SplitHostPort(first.addr)
	firstPort, _ := strconv.Atoi(p)

	var contact sip.Uri
	if err := sip.ParseUri(g.cfg.SIP.Contact, &contact); err != nil {
		return fmt.Errorf("sip.contact %q: %w", g.cfg.SIP.Contact, err)
	}
	// A sips: Contact is reached over TLS only (RFC 3261 §26.2): it names the first tls listener.
	contactHost, contactPort := firstHost, firstPort
	if contact.IsEncrypted() {
		for _, o := range opened {
			if o.network == "tls" {
				contactHost, p, _ = net.SplitHostPort(o.addr)
				contactPort, _ = strconv.Atoi(p)
				break
			}
		}
	}
	switch {
	case g.anyEphemeralListen():
		// A listener on port 0 gets its port from the kernel: advertise what we really listen on.
		contact.Host, contact.Port = contactHost, contactPort
	case contact.Port == 0:
		// No port in sip.contact: the one we listen on. The host stays the operator's (a name, a NAT address).
		contact.Port = contactPort
	}
	// A sip: URI that names no transport is reached over UDP (RFC 3263 §4.1), and peers send their requests in
	// our dialogs (ACK, re-INVITE, BYE) to the Contact, through the proxies of the route set and then from
	// the last one. A Contact whose port no udp listener has names the transport of the listener it is;
	// without it those requests went over UDP to a port where nothing listens, and a peer's BYE through a
	// proxy never ended the session.
	if tp := contactTransport(opened, contact.Port); tp != "" && !contact.IsEncrypted() && !contact.UriParams.Has("transport") {
		contact.UriParams = append(contact.UriParams.Clone(), sip.HeaderKV{K: "transport", V: tp})
	}
	g.contact = sip.ContactHeader{Address: contact}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(contact.Host), sipgo.WithClientLogger(sipLog))
	if err != nil {
		return err
	}
	client.TxRequester = requester{g} // the CANCELs it sends are put right (indialog.go)
	g.client = client
	g.dialogUA = &sipgo.DialogUA{Client: client, ContactHDR: g.contact}
	udpPort := contact.Port
	if contact.IsEncrypted() {
		udpPort = 0 // the Contact's port is a tls listener's: our Via over UDP names the UDP socket's own
	}
	for _, o := range opened {
		if o.pc != nil && (g.udpc == nil || o.addr == net.JoinHostPort(firstHost, strconv.Itoa(udpPort))) {
			port := udpPort
			if port == 0 {
				port = o.pc.LocalAddr().(*net.UDPAddr).Port
			}
			g.udpc = newUDPClient(o.pc, contact.Host, port)
		}
	}
	// Serve only now: handlers may use everything set above.
	for _, f := range serves {
		g.serve(f)
	}
	return g.awaitUDPServed(opened)
}

// awaitUDPServed returns once sipgo knows each UDP listener of opened, or an error after a while. sipgo learns
// one in the goroutine that serves it (ServeUDP), and until then a request told to go out of it (fromListener:
// every INVITE over UDP) finds no connection there and has sipgo bind a socket of its own to the listener's
// address, which fails (EADDRINUSE): Start returned before that, and a session set up at once failed, 480.
func (g *Gateway) awaitUDPServed(opened []sipListener) error {
	pool := g.ua.TransportLayer().Pool("udp")
	deadline := time.Now().Add(5 * time.Second)
	for _, o := range opened {
		if o.pc == nil {
			continue
		}
		addr := o.pc.LocalAddr().String()
		for {
			if c := pool.Get(addr); c != nil {
				c.TryClose() // Get took a reference
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sip: the UDP listener %s is not served", addr)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

func (g *Gateway) anyEphemeralListen() bool {
	for _, l := range g.cfg.SIP.Listen {
		if strings.HasSuffix(l.Addr, ":0") {
			return true
		}
	}
	return false
}

// contactTransport is the transport a Contact with port must name: "" when a udp listener has the port (or
// none has it), else "tcp" or "tls", the first listener's with that port.
func contactTransport(opened []sipListener, port int) string {
	tp := ""
	for _, o := range opened {
		if _, p, _ := net.SplitHostPort(o.addr); p != strconv.Itoa(port) {
			continue
		}
		if o.network == "udp" {
			return ""
		}
		if tp == "" {
			tp = o.network
		}
	}
	return tp
}

// sipListener is one open SIP listener, not yet served.
type sipListener struct {
	network, addr string
	serve         func() error
	closer        io.Closer
	pc            net.PacketConn // udp
}

// openSIPListeners opens every sip.listen entry. Entries asking for port 0 on one host share the port the first
// one got, as 5060 would be shared: a SIP URI names one port for every transport. When that port is taken on
// another transport, the whole set is tried again.
func (g *Gateway) openSIPListeners() ([]sipListener, error) {
	if len(g.cfg.SIP.Listen) == 0 {
		return nil, errors.New("sip.listen is empty")
	}
	g.sipConns = newSIPConns(g, g.cfg.Limits.MaxSIPConns, g.cfg.Limits.MaxSIPConnsPerSource, g.cfg.Limits.SIPConnIdleTimeout)
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		var opened []sipListener
		ports := make(map[string]string) // host -> the port an earlier ":0" listener got
		taken := make(map[string]bool)   // host+"/udp" or host+"/stream": that socket kind already has it
		shared := false
		var err error
		for _, l := range g.cfg.SIP.Listen {
			want := l.Addr
			h, p, splitErr := net.SplitHostPort(l.Addr)
			ephemeral := splitErr == nil && p == "0"
			// UDP shares with one TCP-based listener (tcp or tls); two TCP sockets cannot share a port.
			kind := h + "/stream"
			if l.Network == "udp" {
				kind = h + "/udp"
			}
			if chosen, ok := ports[h]; ephemeral && ok && !taken[kind] {
				want, shared = net.JoinHostPort(h, chosen), true
			}
			var o sipListener
			o, err = g.listenSIP(l.Network, want)
			if err != nil {
				err = fmt.Errorf("sip.listen %s:%s: %w", l.Network, l.Addr, err)
				break
			}
			if ephemeral {
				if _, ok := ports[h]; !ok {
					_, ports[h], _ = net.SplitHostPort(o.addr)
				}
				if _, got, _ := net.SplitHostPort(o.addr); got == ports[h] {
					taken[kind] = true
				}
			}
			opened = append(opened, o)
		}
		if err == nil {
			return opened, nil
		}
		for _, o := range opened {
			o.closer.Close()
		}
		if !shared {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// udpReadBuffer is the receive buffer asked for on SIP UDP listeners. The kernel's default (about 200 KiB)
// holds only ~100 datagrams, so a few milliseconds without reading at 10,000 MESSAGEs/s drop some, and each
// costs the sender a 500 ms retransmission; 4 MiB holds a fifth of a second.
const udpReadBuffer = 4 << 20

// setReadBuffer asks for a want-byte receive buffer and says whether the kernel gave less: Linux caps the
// request at net.core.rmem_max, without an error.
func setReadBuffer(uc *net.UDPConn, want int) (got int, capped bool) {
	uc.SetReadBuffer(want)
	got, ok := readBufferSize(uc)
	return got, ok && got < want
}

// listenSIP opens one SIP listener.
func (g *Gateway) listenSIP(network, addr string) (sipListener, error) {
	o := sipListener{network: network}
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return o, err
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			if got, capped := setReadBuffer(uc, udpReadBuffer); capped {
				g.log.Warn("SIP UDP receive buffer smaller than asked: MESSAGEs may be dropped under load",
					"addr", uc.LocalAddr().String(), "asked", udpReadBuffer, "got", got,
					"fix", "sysctl -w net.core.rmem_max=4194304")
			}
		}
		pc = rawio.WrapPacketConn(pc)
		o.addr, o.closer, o.pc = pc.LocalAddr().String(), pc, pc
		o.serve = func() error { return g.srv.ServeUDP(pc) }
		return o, nil
	case "tcp":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return o, err
		}
		ln = wholeReadsListener{g.sipConns.listener(rawio.WrapListener(ln))}
		o.addr, o.closer = ln.Addr().String(), ln
		o.serve = func() error { return g.srv.ServeTCP(ln) }
		return o, nil
	case "tls":
		conf, err := sipServerTLS(g.cfg.SIP.TLS, g.sipCert)
		if err != nil {
			return o, err
		}
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return o, err
		}
		ln := wholeReadsListener{tls.NewListener(g.sipConns.listener(rawio.WrapListener(tl)), conf)}
		o.addr, o.closer = ln.Addr().String(), ln
		o.serve = func() error { return g.srv.ServeTLS(ln) }
		return o, nil
	}
	return o, fmt.Errorf("unknown network %q", network)
}

func (g *Gateway) track(network, addr string, c io.Closer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sipAddrs[network]; !ok {
		g.sipAddrs[network] = addr
	}
	g.closers = append(g.closers, c)
}

func (g *Gateway) serve(f func() error) {
	g.goBackground(func() {
		if err := f(); err != nil && g.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
			g.log.Error("SIP listener stopped", "err", err)
		}
	})
}

func (g *Gateway) closeListeners() {
	g.mu.Lock()
	closers := g.closers
	g.closers = nil
	g.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
}

// SIPAddr returns the address the gateway listens on for a network ("udp", "tcp", "tls"), or "".
func (g *Gateway) SIPAddr(network string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sipAddrs[network]
}

// SIPAddrs lists every SIP listen address as network:host:port.
func (g *Gateway) SIPAddrs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n, a := range g.sipAddrs {
		out = append(out, n+":"+a)
	}
	return out
}

// MSRPAddr returns the address the MSRP listener is bound to.
func (g *Gateway) MSRPAddr() string { return g.msrpLocal }

// Ready reports whether the gateway is serving and not draining.
func (g *Gateway) Ready() bool { return g.serving.Load() && !g.draining.Load() && g.ctx.Err() == nil }

// Drain starts a graceful drain: new sessions are refused with 503, existing ones keep carrying messages.
func (g *Gateway) Drain() {
	if g.draining.CompareAndSwap(false, true) {
		g.log.Info("draining: new sessions are refused")
	}
}

// shutdownGrace bounds what Shutdown still waits for once shutdown_timeout has passed and what was left has
// failed: the failure REPORTs to write, the answers to held MESSAGEs, the BYEs and the notifications. What
// has not finished by then is abandoned by Close.
const shutdownGrace = 5 * time.Second

// Shutdown drains (SPEC §3.3): new sessions get 503; messages are still carried both ways until
// gateway.shutdown_timeout (or ctx) ends; then what is left fails with 503: a MESSAGE gets 503 (a notification
// when it was answered already), a MESSAGE made from a SEND gets its failure REPORT while the MSRP session
// still exists. Then every session gets BYE, and every listener, connection and goroutine is released.
// Shutdown returns within shutdown_timeout plus shutdownGrace.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.Drain()
	carry, cancel := context.WithTimeout(ctx, g.cfg.Gateway.ShutdownTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
wait:
	for g.pendingWork() > 0 {
		select {
		case <-carry.Done():
			break wait
		case <-tick.C:
		}
	}
	tick.Stop()
	grace, cancelGrace := context.WithTimeout(ctx, shutdownGrace)
	defer cancelGrace()
	// MSRP → MESSAGE first: the REPORTs are queued on sessions that still exist; a SEND coming now is refused.
	g.out.stop(outcomeDraining)
	var ended sync.WaitGroup
	g.table.Range(func(s *Session) bool {
		ended.Add(1)
		go func() {
			defer ended.Done()
			g.end(s, ending{reason: "shutdown", o: outcomeDraining, bye: true, flush: grace})
		}()
		return true
	})
	ended.Wait()
	// Every held MESSAGE gets its answer, every BYE and notification goes out before the transports close,
	// as far as the grace allows.
	g.waitZero(grace, &g.inflight)
	g.waitZero(grace, &g.byes)
	g.out.drain(grace)
	g.Close()
	return nil
}

// waitZero waits until n is zero or ctx ends.
func (g *Gateway) waitZero(ctx context.Context, n *atomic.Int64) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pendingWork counts messages still queued on either side.
func (g *Gateway) pendingWork() int {
	n := g.out.pending()
	g.table.Range(func(s *Session) bool {
		n += int(s.queued.Load())
		return true
	})
	return n
}

// Close stops everything at once: listeners, MSRP connections, timers and goroutines. Sessions get no BYE;
// use Shutdown for that.
func (g *Gateway) Close() {
	g.cancel()
	if g.udpc != nil {
		g.udpc.close() // generated MESSAGEs still waiting for an answer end as drained
	}
	g.closeListeners()
	g.table.Range(func(s *Session) bool {
		g.endSession(s, "closed", outcomeDraining, false)
		return true
	})
	if g.msrp != nil {
		g.msrp.Close()
	}
	if g.ua != nil {
		g.ua.Close()
	}
	g.bg.closeAndWait()
	g.workers.close()
	g.out.close()
}

// goBackground runs f in a goroutine the gateway owns (Close waits for it). It reports false, and runs
// nothing, once Close is waiting: the caller then does without (Close ends every session anyway).
func (g *Gateway) goBackground(f func()) bool { return g.bg.run(f) }

// background is a sync.WaitGroup that stops taking goroutines when it is waited for. Handlers keep running
// while Close waits (they end with the worker pool, after it), and a WaitGroup's Add from zero concurrent with
// its Wait is a misuse (its documentation; the race detector reports it).
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (b *background) run(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

func (b *background) closeAndWait() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

func (g *Gateway) publish(e event.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	g.events.Publish(e)
}

package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file holds the test harness: a gateway on ephemeral loopback ports and session-mode clients (sipgo UAs
// with an msrp endpoint). The page-mode phones are internal/testpeer's.

func TestMain(m *testing.M) {
	// sipgo's limits are process-wide: set once, here, as the daemon does in main.
	ConfigureSIPStack(config.Default())
	os.Exit(m.Run())
}

const waitFor = 10 * time.Second // how long a test waits for something that should happen

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// eventLog records published events.
type eventLog struct {
	mu     sync.Mutex
	events []event.Event
	ch     chan event.Event
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan event.Event, 4096)} }

func (l *eventLog) Publish(e event.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.ch <- e:
	default:
	}
}

// waitKind waits for the next event of kind k.
func (l *eventLog) waitKind(t testing.TB, k event.Kind) event.Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-l.ch:
			if e.Kind == k {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within %s", k, waitFor)
		}
	}
}

func (l *eventLog) countWhere(f func(event.Event) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if f(e) {
			n++
		}
	}
	return n
}

func (l *eventLog) count(k event.Kind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

type harness struct {
	t      testing.TB
	gw     *Gateway
	cfg    *config.Config
	events *eventLog
}

// testConfig is the default config on ephemeral loopback ports, with short deadlines.
func testConfig() *config.Config {
	cfg := config.Default()
	cfg.SIP.Listen = []config.Listen{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}}
	cfg.SIP.Contact = "sip:127.0.0.1:0"
	cfg.MSRP.Listen = "msrp://127.0.0.1:0;tcp"
	cfg.Gateway.SetupTimeout = 3 * time.Second
	cfg.Gateway.ShutdownTimeout = 2 * time.Second
	cfg.Gateway.Message.Reply = "accept"
	return cfg
}

func newHarness(t testing.TB, mutate func(*config.Config)) *harness {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(cfg)
	}
	ev := newEventLog()
	gw, err := New(cfg, Options{Logger: testLogger(t).With("who", "gateway"), Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return &harness{t: t, gw: gw, cfg: cfg, events: ev}
}

func (h *harness) udp() string { return h.gw.SIPAddr("udp") }

// newUA makes a sipgo UA serving UDP on an ephemeral loopback port. register installs the handlers before
// the first packet can arrive.
func newUA(t testing.TB, name string, register func(srv *sipgo.Server, client *sipgo.Client, addr string)) (*sipgo.UserAgent, *sipgo.Client, string) {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	// UDP and TCP on the same port, as a phone listens: large MESSAGEs arrive over TCP (RFC 3428 §8).
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatal(err)
		}
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	register(srv, client, pc.LocalAddr().String())
	go srv.ServeUDP(pc)
	go srv.ServeTCP(ln)
	t.Cleanup(func() { pc.Close(); ln.Close(); ua.Close() })
	return ua, client, pc.LocalAddr().String()
}

func reasonFor(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 404:
		return "Not Found"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 486:
		return "Busy Here"
	case 503:
		return "Service Unavailable"
	}
	return "Status"
}

// client is a session-mode user agent (RCS / UC client): INVITE + MSRP.
type client struct {
	t       testing.TB
	sipc    *sipgo.Client
	dua     *sipgo.DialogUA
	addr    string
	uri     string
	ep      *msrp.Endpoint
	invites chan *clientSession

	mu          sync.Mutex
	answer      int    // final response to INVITEs (default 200; 0 = never answer)
	setup       string // a=setup we answer with ("passive" default: the gateway connects)
	acceptTypes []string
	wrapped     []string
	dialogs     map[string]*clientSession
}

// clientSession is one MSRP session of a client.
type clientSession struct {
	c       *client
	ms      *msrp.Session
	inbox   chan *msrp.Incoming
	closed  chan error
	uas     *sipgo.DialogServerSession
	uac     *sipgo.DialogClientSession
	reply   atomic.Int32 // code HandleMessage returns (0 = 200)
	reports chan *msrp.Report
	byes    chan struct{} // a BYE for this session's dialog arrived
	settled chan struct{} // closed when our 200 to the gateway's INVITE got its ACK (uas is then safe to use)
}

func (cs *clientSession) HandleMessage(s *msrp.Session, m *msrp.Incoming) int {
	cs.inbox <- m
	if code := cs.reply.Load(); code != 0 {
		return int(code)
	}
	return 200
}
func (cs *clientSession) HandleReport(s *msrp.Session, r *msrp.Report) { cs.reports <- r }
func (cs *clientSession) HandleClose(s *msrp.Session, err error) {
	select {
	case cs.closed <- err:
	default:
	}
}

func newClient(t testing.TB, user string) *client {
	ep := msrp.NewEndpoint(msrp.Config{CheckFromPath: true, Logger: testLogger(t).With("who", "client-msrp")})
	if _, err := ep.Listen("tcp", "127.0.0.1:0", false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	c := &client{
		t: t, ep: ep, invites: make(chan *clientSession, 16), answer: 200, setup: "passive",
		acceptTypes: []string{"text/plain"}, dialogs: make(map[string]*clientSession),
	}
	c.serve(user, c.onInvite)
	return c
}

func (c *client) setAnswer(code int, setup string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = code
	if setup != "" {
		c.setup = setup
	}
}

// serve starts the client's SIP side: onInvite answers the gateway's INVITEs; ACK and BYE work on the
// client's dialogs.
func (c *client) serve(user string, onInvite func(req *sip.Request, tx sip.ServerTransaction)) {
	newUA(c.t, "client-"+user, func(srv *sipgo.Server, sc *sipgo.Client, addr string) {
		c.addr, c.uri = addr, "sip:"+user+"@"+addr
		var contact sip.Uri
		sip.ParseUri(c.uri, &contact)
		c.sipc = sc
		c.dua = &sipgo.DialogUA{Client: sc, ContactHDR: sip.ContactHeader{Address: contact}}
		srv.OnInvite(onInvite)
		srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
			if cs := c.dialog(req); cs != nil && cs.uas != nil {
				cs.uas.ReadAck(req, tx)
			}
		})
		srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			cs := c.dialog(req)
			if cs == nil {
				tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
				return
			}
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			cs.byes <- struct{}{}
			cs.ms.Close()
			select {
			case cs.closed <- fmt.Errorf("BYE"):
			default:
			}
		})
	})
}

func (c *client) dialog(req *sip.Request) *clientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogs[callID(req)]
}

func (c *client) newSession() *clientSession {
	cs := &clientSession{c: c, inbox: make(chan *msrp.Incoming, 1024), closed: make(chan error, 4), reports: make(chan *msrp.Report, 1024), byes: make(chan struct{}, 4), settled: make(chan struct{})}
	cs.ms = c.ep.NewSession(cs)
	return cs
}

func (c *client) media(cs *clientSession, setup string) *sdp.Media {
	u := cs.ms.LocalURI()
	c.mu.Lock()
	defer c.mu.Unlock()
	return &sdp.Media{Host: u.Host, Port: u.Port, Path: []string{u.String()}, AcceptTypes: c.acceptTypes, AcceptWrappedTypes: c.wrapped, Setup: setup}
}

// onInvite answers the gateway's INVITE (MESSAGE-first flow).
func (c *client) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	c.mu.Lock()
	code, setup := c.answer, c.setup
	c.mu.Unlock()
	if code == 0 {
		<-tx.Done() // never answer
		return
	}
	if code != 200 {
		tx.Respond(sip.NewResponseFromRequest(req, code, reasonFor(code), nil))
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	cs := c.newSession()
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		c.t.Errorf("gateway offered a bad path: %v", err)
		return
	}
	cs.ms.SetPeerPath(path)
	dlg, err := c.dua.ReadInvite(req, tx)
	if err != nil {
		c.t.Errorf("ReadInvite: %v", err)
		return
	}
	cs.uas = dlg
	c.mu.Lock()
	c.dialogs[callID(req)] = cs
	c.mu.Unlock()
	c.invites <- cs
	err = dlg.RespondSDP(c.media(cs, setup).Marshal(1, 1))
	close(cs.settled)
	if err != nil {
		return
	}
	if setup == "active" {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := cs.ms.Connect(ctx); err != nil {
			c.t.Errorf("client Connect: %v", err)
		}
	}
}

// waitInvite waits for the gateway's INVITE to have been answered with a session.
func (c *client) waitInvite() *clientSession {
	c.t.Helper()
	select {
	case cs := <-c.invites:
		return cs
	case <-time.After(waitFor):
		c.t.Fatalf("client %s got no INVITE within %s", c.uri, waitFor)
		return nil
	}
}

// invite starts a session-first chat: INVITE to the page-mode user toURI through the gateway.
func (c *client) invite(gwAddr, toURI string, setup string) (*clientSession, error) {
	cs := c.newSession()
	var ruri, from sip.Uri
	sip.ParseUri(toURI, &ruri)
	sip.ParseUri(c.uri, &from)
	req := sip.NewRequest(sip.INVITE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.media(cs, setup).Marshal(2, 1))
	req.SetDestination(gwAddr)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return nil, err
	}
	cs.uac = dlg
	c.mu.Lock()
	c.dialogs[callID(req)] = cs
	c.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		return nil, err
	}
	ans, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		return nil, fmt.Errorf("gateway answer: %w", err)
	}
	path, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		return nil, err
	}
	cs.ms.SetPeerPath(path)
	if sdp.OffererActive(ans.Setup) {
		if err := cs.ms.Connect(ctx); err != nil {
			return nil, fmt.Errorf("connect to the gateway: %w", err)
		}
	}
	return cs, nil
}

// send sends a text SEND and waits for its transaction result.
func (cs *clientSession) send(ctype, body string) msrp.SendResult {
	cs.c.t.Helper()
	done := make(chan msrp.SendResult, 1)
	if err := cs.ms.Send(&msrp.Outgoing{ContentType: ctype, Body: []byte(body)}, func(r msrp.SendResult) { done <- r }); err != nil {
		cs.c.t.Fatalf("SEND: %v", err)
	}
	select {
	case r := <-done:
		return r
	case <-time.After(waitFor):
		cs.c.t.Fatalf("no response to SEND within %s", waitFor)
		return msrp.SendResult{}
	}
}

func (cs *clientSession) recv() *msrp.Incoming {
	cs.c.t.Helper()
	select {
	case m := <-cs.inbox:
		return m
	case <-time.After(waitFor):
		cs.c.t.Fatalf("client received no SEND within %s", waitFor)
		return nil
	}
}

func (cs *clientSession) bye() {
	cs.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var err error
	if cs.uac != nil {
		err = cs.uac.Bye(ctx)
	} else {
		err = cs.server().Bye(ctx)
	}
	if err != nil {
		cs.c.t.Fatalf("BYE: %v", err)
	}
	cs.ms.Close()
}

// waitBye waits for the gateway's BYE on this session's dialog.
func (cs *clientSession) waitBye() {
	cs.c.t.Helper()
	select {
	case <-cs.byes:
	case <-time.After(waitFor):
		cs.c.t.Fatalf("no BYE within %s", waitFor)
	}
}

func doReq(c *sipgo.Client, req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.Do(ctx, req)
}

// sendOut sends an arbitrary SEND and returns its transaction result (or times out).
func (cs *clientSession) sendOut(o *msrp.Outgoing) msrp.SendResult {
	cs.c.t.Helper()
	done := make(chan msrp.SendResult, 1)
	if err := cs.ms.Send(o, func(r msrp.SendResult) { done <- r }); err != nil {
		cs.c.t.Fatalf("SEND: %v", err)
	}
	select {
	case r := <-done:
		return r
	case <-time.After(waitFor):
		cs.c.t.Fatalf("no result for SEND within %s", waitFor)
		return msrp.SendResult{}
	}
}

// report waits for the next REPORT.
func (cs *clientSession) report() *msrp.Report {
	cs.c.t.Helper()
	select {
	case r := <-cs.reports:
		return r
	case <-time.After(waitFor):
		cs.c.t.Fatalf("no REPORT within %s", waitFor)
		return nil
	}
}

// noReport asserts no REPORT arrives for a short while.
func (cs *clientSession) noReport(d time.Duration) {
	cs.c.t.Helper()
	select {
	case r := <-cs.reports:
		cs.c.t.Fatalf("unexpected REPORT %d %s", r.StatusCode, r.Comment)
	case <-time.After(d):
	}
}

func (c *client) setTypes(accept, wrapped []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acceptTypes, c.wrapped = accept, wrapped
}

// server returns the dialog of a session the gateway INVITEd, once our 200 is settled (the dialog is written
// by the INVITE handler's goroutine until then).
func (cs *clientSession) server() *sipgo.DialogServerSession {
	cs.c.t.Helper()
	select {
	case <-cs.settled:
	case <-time.After(waitFor):
		cs.c.t.Fatalf("our 200 was not settled within %s", waitFor)
	}
	return cs.uas
}

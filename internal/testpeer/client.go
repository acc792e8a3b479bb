package testpeer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// Client is a session-mode user agent (an RCS or UC client): a sipgo UA that answers INVITEs offering MSRP,
// can INVITE a page-mode user through a gateway, and carries the chat over its own msrp.Endpoint.
type Client struct {
	// URI is the client's address of record, sip:USER@127.0.0.1:PORT.
	URI string
	// Addr is the host:port its SIP side listens on (UDP and TCP).
	Addr string
	// Endpoint is the client's MSRP endpoint, listening on an ephemeral loopback port.
	Endpoint *msrp.Endpoint

	t       testing.TB
	cfg     ClientConfig
	sipc    *sipgo.Client
	dua     *sipgo.DialogUA
	invites chan *ClientSession

	mu          sync.Mutex
	answer      int    // final response to INVITEs (200; 0 = never answer)
	setup       string // a=setup we answer with ("passive": the gateway connects)
	reply       int    // MSRP status new sessions answer SENDs with (0 = 200)
	report      int    // failure REPORT status new sessions send before answering each SEND (0 = none)
	acceptTypes []string
	wrapped     []string
	editMedia   func(*sdp.Media)          // changes every SDP the client sends (EditMedia), or nil
	relay       *Relay                    // new sessions sit behind it (nil: none)
	msrpRelay   *msrp.Relay               // new sessions sit behind this real relay, AUTHed (nil: none)
	dialogs     map[string]*ClientSession // Call-ID -> session
	failures    []string                  // what the gateway did wrong, seen where the test could not be told
}

// ClientConfig is what NewClientWith can change about a client; the zero value is NewClient's client.
type ClientConfig struct {
	// TLS, when not nil, makes the client's MSRP endpoint listen for msrps with this server configuration:
	// its URIs, and so its SDP, are then secure (TCP/TLS/MSRP).
	TLS *tls.Config
	// ClientTLS is the configuration of the msrps connections the client dials.
	ClientTLS *tls.Config
	// SIPTLS, when not nil, makes the client's SIP side listen for SIP over TLS only, with this server
	// configuration, and SIPClientTLS is the configuration of the SIP TLS connections it makes.
	SIPTLS, SIPClientTLS *tls.Config
	// Fingerprint is the a=fingerprint of every SDP the client sends ("" for none).
	Fingerprint string
	// PeerMedia, when not nil, is called with the gateway's SDP (the offer in its INVITE, or its answer to
	// ours) once the session's peer path is set and before any MSRP connection is made: to record it, or to
	// set a peer verifier on cs.MSRP. An error refuses the INVITE with 488, or fails Invite.
	PeerMedia func(cs *ClientSession, m *sdp.Media) error
}

// NewClient starts a client for user: SIP on an ephemeral loopback port (UDP and TCP), MSRP on another. It
// answers INVITEs 200 with a=setup:passive and accepts text/plain until told otherwise.
//
// What the gateway gets wrong where no test can be told at once (an unusable a=path in its offer, an MSRP
// connection it does not take) fails the test at its end.
func NewClient(t testing.TB, user string) *Client {
	t.Helper()
	return NewClientWith(t, user, ClientConfig{})
}

// NewClientWith is NewClient with the changes cfg asks for.
func NewClientWith(t testing.TB, user string, cfg ClientConfig) *Client {
	t.Helper()
	ep := msrp.NewEndpoint(msrp.Config{CheckFromPath: true, TLSConfig: cfg.TLS, ClientTLSConfig: cfg.ClientTLS,
		Logger: Logger(t).With("who", "client-msrp", "user", user)})
	if _, err := ep.Listen("tcp", "127.0.0.1:0", cfg.TLS != nil); err != nil {
		t.Fatalf("testpeer: client %s MSRP listen: %v", user, err)
	}
	c := &Client{
		t: t, cfg: cfg, Endpoint: ep, invites: make(chan *ClientSession, 64), answer: 200, setup: sdp.SetupPassive,
		acceptTypes: []string{"text/plain"}, dialogs: make(map[string]*ClientSession),
	}
	t.Cleanup(func() {
		ep.Close()
		for _, f := range c.takeFailures() {
			t.Errorf("testpeer: client %s: %s", c.URI, f)
		}
	})
	newUA(t, "client-"+user, uaConfig{serverTLS: cfg.SIPTLS, clientTLS: cfg.SIPClientTLS}, func(srv *sipgo.Server, sc *sipgo.Client, addr string) {
		c.Addr, c.URI = addr, "sip:"+user+"@"+addr
		var contact sip.Uri
		sip.ParseUri(c.URI, &contact)
		c.sipc = sc
		c.dua = &sipgo.DialogUA{Client: sc, ContactHDR: sip.ContactHeader{Address: contact}}
		srv.OnInvite(c.onInvite)
		srv.OnAck(c.onAck)
		srv.OnBye(c.onBye)
	})
	return c
}

// SetAnswer sets the final response to INVITEs (0: never answer) and, when setup is not empty, the a=setup of
// our SDP answer ("active": we connect to the gateway).
func (c *Client) SetAnswer(code int, setup string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answer = code
	if setup != "" {
		c.setup = setup
	}
}

// SetTypes sets the a=accept-types and a=accept-wrapped-types of our SDP.
func (c *Client) SetTypes(accept, wrapped []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acceptTypes, c.wrapped = accept, wrapped
}

// EditMedia sets a function that changes every SDP the client sends from now on (offers, answers, and the SDP
// Media returns) once the client has filled it in: an a=max-size, an a=path a gateway must refuse. nil removes
// it.
func (c *Client) EditMedia(edit func(m *sdp.Media)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.editMedia = edit
}

// SetReply sets the MSRP status that sessions made from now on answer SENDs with (200 by default), so that
// even the first SEND of a session the gateway sets up gets it. ClientSession.SetReply changes one session.
func (c *Client) SetReply(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reply = code
}

// SetReportFailure makes sessions made from now on send a failure REPORT with this status for each SEND
// before answering it (0: none); ClientSession.SetReportFailure changes one session.
func (c *Client) SetReportFailure(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report = code
}

// SetRelay puts the sessions made from now on behind relay r (nil: none): their SDP a=path is r's URI, then
// their own, and they reach the gateway through r, so their peer path is r's URI, then the gateway's a=path.
func (c *Client) SetRelay(r *Relay) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.relay, c.msrpRelay = r, nil
}

// AuthRelay puts the sessions made from now on behind the real MSRP relay at relayURI (a Kamailio's, say), as
// RFC 4976 §5 has it: the client opens a connection to it and AUTHs (msrp.Endpoint.Relay, answering a Digest
// challenge with cred when it is not nil); its sessions then
// advertise the Use-Path the relay granted before their own URI, and carry everything over that connection.
// It fails the test when the relay does not grant a path within WaitFor. The connection is closed with the
// test, or by Close on what it returns; SetRelay and AuthRelay replace each other.
func (c *Client) AuthRelay(relayURI msrp.URI, cred *msrp.Credentials) *msrp.Relay {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	r, err := c.Endpoint.Relay(ctx, relayURI, cred)
	if err != nil {
		c.t.Fatalf("testpeer: client %s: %v", c.URI, err)
	}
	c.t.Cleanup(r.Close)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msrpRelay, c.relay = r, nil
	return r
}

// SIPClient is the client's sipgo client, for requests the methods here do not cover.
func (c *Client) SIPClient() *sipgo.Client { return c.sipc }

// DialogUA is the client's sipgo dialog UA, for a test that drives an INVITE by hand (a late offer, a raw
// SDP body). Sessions it sets up that way are not known to the client's ACK and BYE handlers.
func (c *Client) DialogUA() *sipgo.DialogUA { return c.dua }

// Invites is the queue of sessions the gateway INVITEd us to that WaitInvite reads, for a test that waits on
// several things at once or makes sure no INVITE came.
func (c *Client) Invites() <-chan *ClientSession { return c.invites }

func (c *Client) dialog(req *sip.Request) *ClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogs[CallID(req)]
}

// fail records something the gateway got wrong where no test could be told (a handler goroutine); the test
// fails with it at its end.
func (c *Client) fail(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
}

func (c *Client) takeFailures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.failures
	c.failures = nil
	return f
}

// NewSession makes a session on the client's MSRP endpoint that no dialog knows, for a test that sets up the
// SIP side by hand (see DialogUA) or moves a chat to a new path. Its peer path is not set.
func (c *Client) NewSession() *ClientSession { return c.newSession("") }

func (c *Client) newSession(callID string) *ClientSession {
	cs := &ClientSession{
		CallID: callID, c: c,
		inbox: make(chan *msrp.Incoming, 4096), reports: make(chan *msrp.Report, 4096),
		closed: make(chan error, 1), bye: make(chan struct{}),
	}
	c.mu.Lock()
	cs.reply.Store(int32(c.reply))
	cs.report.Store(int32(c.report))
	cs.relay = c.relay
	behind := c.msrpRelay
	c.mu.Unlock()
	if behind != nil {
		cs.MSRP = behind.NewSession(cs) // its path and peer path have the relay's Use-Path in them
	} else {
		cs.MSRP = c.Endpoint.NewSession(cs)
	}
	c.t.Cleanup(func() {
		if n := cs.dropped.Load(); n > 0 {
			c.t.Errorf("testpeer: %d SENDs to %s were dropped: the session's inbox (%d) was not read while they came",
				n, cs.MSRP.LocalURI(), cap(cs.inbox))
		}
	})
	return cs
}

// Media is the SDP the client sends for cs with the given a=setup: cs's path (its relay's URI first, when it
// has one), the client's accept types and fingerprint, changed as EditMedia said.
func (c *Client) Media(cs *ClientSession, setup string) *sdp.Media {
	u := cs.MSRP.LocalURI()
	var path []string
	for _, p := range cs.MSRP.LocalPath() { // behind an AUTHed relay: its Use-Path, then u
		path = append(path, p.String())
	}
	if cs.relay != nil {
		path = []string{cs.relay.URI.String(), u.String()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := &sdp.Media{Secure: u.Secure, Host: u.Host, Port: u.Port, Path: path,
		AcceptTypes: c.acceptTypes, AcceptWrappedTypes: c.wrapped, Setup: setup}
	if c.cfg.Fingerprint != "" {
		m.Fingerprints = []string{c.cfg.Fingerprint}
	}
	if c.editMedia != nil {
		c.editMedia(m)
	}
	return m
}

// setPeerPath sets cs's peer path from the gateway's SDP m: behind a relay, the relay's URI comes first
// (RFC 4976 §5.1).
func setPeerPath(cs *ClientSession, m *sdp.Media) error {
	path, err := msrp.ParseSDPPath(strings.Join(m.Path, " "))
	if err != nil {
		return fmt.Errorf("the gateway's a=path %q: %w", m.Path, err)
	}
	if cs.relay != nil {
		path = append([]msrp.URI{cs.relay.URI}, path...)
	}
	cs.MSRP.SetPeerPath(path)
	return nil
}

// onInvite answers an INVITE (the gateway's, in the MESSAGE-first flow). The session reaches WaitInvite once
// our 200 is ACKed (and, when we answered active, our MSRP connection is made).
func (c *Client) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if cs := c.dialog(req); cs != nil {
		// A re-INVITE: answer with our current SDP.
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", c.Media(cs, sdp.SetupPassive).Marshal(1, 2)))
		return
	}
	c.mu.Lock()
	code, setup := c.answer, c.setup
	c.mu.Unlock()
	if code == 0 {
		<-tx.Done() // never answer: the caller's timer must fire
		return
	}
	if code != 200 {
		tx.Respond(sip.NewResponseFromRequest(req, code, Reason(code), nil))
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	cs := c.newSession(CallID(req))
	cs.InviteSource = req.Source()
	if err := setPeerPath(cs, offer); err != nil {
		c.fail("INVITE %s: %v", cs.CallID, err)
		cs.MSRP.Close()
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	if c.cfg.PeerMedia != nil {
		if err := c.cfg.PeerMedia(cs, offer); err != nil {
			cs.MSRP.Close()
			tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
	}
	dlg, err := c.dua.ReadInvite(req, tx)
	if err != nil {
		c.fail("INVITE %s: ReadInvite: %v", cs.CallID, err)
		cs.MSRP.Close()
		tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		return
	}
	cs.uas = dlg
	c.mu.Lock()
	c.dialogs[cs.CallID] = cs
	c.mu.Unlock()
	if err := dlg.RespondSDP(c.Media(cs, setup).Marshal(1, 1)); err != nil {
		return
	}
	if setup == sdp.SetupActive {
		ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		if err := cs.MSRP.Connect(ctx); err != nil {
			c.fail("INVITE %s: MSRP connect to the gateway: %v", cs.CallID, err)
		}
	}
	c.invites <- cs
}

func (c *Client) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if cs := c.dialog(req); cs != nil && cs.uas != nil {
		cs.uas.ReadAck(req, tx)
	}
}

func (c *Client) onBye(req *sip.Request, tx sip.ServerTransaction) {
	cs := c.dialog(req)
	if cs == nil {
		tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	cs.byeOnce.Do(func() {
		cs.byeFrom = req.Source()
		close(cs.bye)
	})
	cs.MSRP.Close()
}

// TryWaitInvite waits for the next INVITE the client answered with a session, at most until ctx ends.
func (c *Client) TryWaitInvite(ctx context.Context) (*ClientSession, error) {
	select {
	case cs := <-c.invites:
		return cs, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("testpeer: client %s got no INVITE: %w", c.URI, ctx.Err())
	}
}

// WaitInvite waits for the next INVITE the client answered with a session; it fails the test after WaitFor.
func (c *Client) WaitInvite() *ClientSession {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	cs, err := c.TryWaitInvite(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// Invite starts a session-first chat: an INVITE to the page-mode user toURI through the gateway at gwAddr
// (host:port, UDP), offering a=setup (empty: none). It returns once the session is up: INVITE answered, ACK
// sent, and, when we are the active side, the MSRP connection made. A final non-2xx comes back as a
// sipgo.ErrDialogResponse carrying the response (see InviteCode). A failure after the 2xx (the ACK, the
// gateway's SDP, the MSRP connection) returns the session along with the error: its dialog is known, so
// WaitBye sees the gateway's BYE.
func (c *Client) Invite(ctx context.Context, gwAddr, toURI, setup string) (*ClientSession, error) {
	return c.InviteWith(ctx, gwAddr, toURI, setup, sipgo.AnswerOptions{})
}

// InviteWith is Invite with options for waiting for the answer: digest credentials for a gateway that
// challenges, for one.
func (c *Client) InviteWith(ctx context.Context, gwAddr, toURI, setup string, opts sipgo.AnswerOptions) (*ClientSession, error) {
	// The Call-ID is set by WriteInvite; the session learns it below.
	cs := c.newSession("")
	req, err := NewRequest(sip.INVITE, c.URI, toURI, "application/sdp", c.Media(cs, setup).Marshal(2, 1))
	if err != nil {
		cs.MSRP.Close()
		return nil, err
	}
	req.SetDestination(gwAddr)
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		cs.MSRP.Close()
		return nil, fmt.Errorf("testpeer: INVITE to %s via %s: %w", toURI, gwAddr, err)
	}
	cs.CallID = CallID(req)
	if err := dlg.WaitAnswer(ctx, opts); err != nil {
		cs.MSRP.Close()
		return nil, fmt.Errorf("testpeer: INVITE to %s via %s: %w", toURI, gwAddr, err)
	}
	cs.uac = dlg
	c.mu.Lock()
	c.dialogs[cs.CallID] = cs
	c.mu.Unlock()
	fail := func(err error) (*ClientSession, error) {
		cs.MSRP.Close()
		return cs, err
	}
	if err := dlg.Ack(ctx); err != nil {
		return fail(fmt.Errorf("testpeer: ACK: %w", err))
	}
	ans, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		return fail(fmt.Errorf("testpeer: the gateway's SDP answer: %w", err))
	}
	if err := setPeerPath(cs, ans); err != nil {
		return fail(fmt.Errorf("testpeer: %w", err))
	}
	if c.cfg.PeerMedia != nil {
		if err := c.cfg.PeerMedia(cs, ans); err != nil {
			return fail(fmt.Errorf("testpeer: the gateway's SDP answer: %w", err))
		}
	}
	if sdp.OffererActive(ans.Setup) {
		if err := cs.MSRP.Connect(ctx); err != nil {
			return fail(fmt.Errorf("testpeer: MSRP connect to the gateway: %w", err))
		}
	}
	return cs, nil
}

// Call is Invite that fails the test when the session is not up within WaitFor.
func (c *Client) Call(gwAddr, toURI, setup string) *ClientSession {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
	defer cancel()
	cs, err := c.Invite(ctx, gwAddr, toURI, setup)
	if err != nil {
		c.t.Fatal(err)
	}
	return cs
}

// InviteCode returns the status code of a failed Invite's final response, or 0 when err carries none.
func InviteCode(err error) int {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) && de.Res != nil {
		return int(de.Res.StatusCode)
	}
	var dv sipgo.ErrDialogResponse
	if errors.As(err, &dv) && dv.Res != nil {
		return int(dv.Res.StatusCode)
	}
	return 0
}

package testpeer

import (
	"context"
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
	dua     *sipgo.DialogUA
	invites chan *ClientSession

	mu          sync.Mutex
	answer      int    // final response to INVITEs (200; 0 = never answer)
	setup       string // a=setup we answer with ("passive": the gateway connects)
	acceptTypes []string
	wrapped     []string
	dialogs     map[string]*ClientSession // Call-ID -> session
}

// NewClient starts a client for user: SIP on an ephemeral loopback port (UDP and TCP), MSRP on another. It
// answers INVITEs 200 with a=setup:passive and accepts text/plain until told otherwise.
func NewClient(t testing.TB, user string) *Client {
	t.Helper()
	ep := msrp.NewEndpoint(msrp.Config{CheckFromPath: true, Logger: Logger(t).With("who", "client-msrp", "user", user)})
	if _, err := ep.Listen("tcp", "127.0.0.1:0", false); err != nil {
		t.Fatalf("testpeer: client %s MSRP listen: %v", user, err)
	}
	t.Cleanup(func() { ep.Close() })
	c := &Client{
		t: t, Endpoint: ep, invites: make(chan *ClientSession, 64), answer: 200, setup: sdp.SetupPassive,
		acceptTypes: []string{"text/plain"}, dialogs: make(map[string]*ClientSession),
	}
	newUA(t, "client-"+user, func(srv *sipgo.Server, sc *sipgo.Client, addr string) {
		c.Addr, c.URI = addr, "sip:"+user+"@"+addr
		var contact sip.Uri
		sip.ParseUri(c.URI, &contact)
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

func (c *Client) dialog(req *sip.Request) *ClientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialogs[CallID(req)]
}

func (c *Client) newSession(callID string) *ClientSession {
	cs := &ClientSession{
		CallID: callID, c: c,
		inbox: make(chan *msrp.Incoming, 4096), reports: make(chan *msrp.Report, 4096),
		closed: make(chan error, 1), bye: make(chan struct{}),
	}
	cs.MSRP = c.Endpoint.NewSession(cs)
	return cs
}

func (c *Client) media(cs *ClientSession, setup string) *sdp.Media {
	u := cs.MSRP.LocalURI()
	c.mu.Lock()
	defer c.mu.Unlock()
	return &sdp.Media{Host: u.Host, Port: u.Port, Path: []string{u.String()}, AcceptTypes: c.acceptTypes, AcceptWrappedTypes: c.wrapped, Setup: setup}
}

// onInvite answers an INVITE (the gateway's, in the MESSAGE-first flow).
func (c *Client) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if cs := c.dialog(req); cs != nil {
		// A re-INVITE: answer with our current SDP.
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", c.media(cs, sdp.SetupPassive).Marshal(1, 2)))
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
	path, err := msrp.ParsePath(strings.Join(offer.Path, " "))
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	cs := c.newSession(CallID(req))
	cs.MSRP.SetPeerPath(path)
	dlg, err := c.dua.ReadInvite(req, tx)
	if err != nil {
		cs.MSRP.Close()
		tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		return
	}
	cs.uas = dlg
	c.mu.Lock()
	c.dialogs[cs.CallID] = cs
	c.mu.Unlock()
	if err := dlg.RespondSDP(c.media(cs, setup).Marshal(1, 1)); err != nil {
		return
	}
	if setup == sdp.SetupActive {
		ctx, cancel := context.WithTimeout(context.Background(), WaitFor)
		defer cancel()
		if err := cs.MSRP.Connect(ctx); err != nil {
			return // the gateway's setup fails; the test sees it there
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
	cs.byeOnce.Do(func() { close(cs.bye) })
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
// sipgo.ErrDialogResponse carrying the response.
func (c *Client) Invite(ctx context.Context, gwAddr, toURI, setup string) (*ClientSession, error) {
	var ruri, from sip.Uri
	if err := sip.ParseUri(toURI, &ruri); err != nil {
		return nil, fmt.Errorf("testpeer: INVITE to %q: %w", toURI, err)
	}
	sip.ParseUri(c.URI, &from)
	req := sip.NewRequest(sip.INVITE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetDestination(gwAddr)
	// The Call-ID is set by WriteInvite; the session learns it below.
	cs := c.newSession("")
	req.SetBody(c.media(cs, setup).Marshal(2, 1))
	fail := func(err error) (*ClientSession, error) {
		cs.MSRP.Close()
		return nil, err
	}
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		return fail(fmt.Errorf("testpeer: INVITE to %s via %s: %w", toURI, gwAddr, err))
	}
	cs.CallID = CallID(req)
	if err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		return fail(fmt.Errorf("testpeer: INVITE to %s via %s: %w", toURI, gwAddr, err))
	}
	cs.uac = dlg
	c.mu.Lock()
	c.dialogs[cs.CallID] = cs
	c.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		return fail(fmt.Errorf("testpeer: ACK: %w", err))
	}
	ans, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		return fail(fmt.Errorf("testpeer: the gateway's SDP answer: %w", err))
	}
	path, err := msrp.ParsePath(strings.Join(ans.Path, " "))
	if err != nil {
		return fail(fmt.Errorf("testpeer: the gateway's a=path %q: %w", ans.Path, err))
	}
	cs.MSRP.SetPeerPath(path)
	if sdp.OffererActive(ans.Setup) {
		if err := cs.MSRP.Connect(ctx); err != nil {
			return fail(fmt.Errorf("testpeer: MSRP connect to the gateway: %w", err))
		}
	}
	return cs, nil
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// sessionSide plays the session-mode clients: a SIP UA that sends and answers INVITEs with an MSRP offer, and
// MSRP endpoints that carry the SENDs.
type sessionSide struct {
	*sipUA
	gw             string
	transport      string
	connPerSession bool
	log            *slog.Logger
	dua            *sipgo.DialogUA
	ep             *msrp.Endpoint // shared endpoint: one listener, connections reused per RFC 4975
	epPort         int

	// inviteFor maps the user of an incoming INVITE's Request-URI to a session index (MESSAGE-first setup);
	// false refuses the INVITE with 404.
	inviteFor func(user string) (int, bool)
	// onChat is called when an incoming INVITE was answered; the chat is not bound yet.
	onChat func(c *chat)
	// onMessage gets each complete MSRP message a chat receives and returns the SEND's response code.
	onMessage func(c *chat, m *msrp.Incoming) int

	mu      sync.Mutex
	dialogs map[string]*chat // by Call-ID

	connLost atomic.Int64 // chats whose MSRP connection ended under them
	byesIn   atomic.Int64 // BYEs the gateway sent
}

// chat is one session-mode client session.
type chat struct {
	side   *sessionSide
	idx    int
	ms     *msrp.Session
	ep     *msrp.Endpoint // own endpoint with -conn-per-session, else nil
	callID string
	uac    *sipgo.DialogClientSession
	uas    *sipgo.DialogServerSession
	ended  atomic.Bool
}

func (c *chat) HandleMessage(_ *msrp.Session, m *msrp.Incoming) int { return c.side.onMessage(c, m) }
func (c *chat) HandleReport(*msrp.Session, *msrp.Report)            {}
func (c *chat) HandleClose(_ *msrp.Session, err error) {
	if err != nil && !errors.Is(err, msrp.ErrClosed) && !c.ended.Load() {
		c.side.connLost.Add(1)
	}
}

func newSessionSide(gw, transport string, connPerSession bool, log *slog.Logger) (*sessionSide, error) {
	s := &sessionSide{gw: gw, transport: transport, connPerSession: connPerSession, log: log, dialogs: make(map[string]*chat)}
	s.ep = msrp.NewEndpoint(s.msrpConfig())
	addr, err := s.ep.Listen("tcp", "127.0.0.1:0", false)
	if err != nil {
		s.ep.Close()
		return nil, fmt.Errorf("MSRP listen on 127.0.0.1:0: %w", err)
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		s.ep.Close()
		return nil, fmt.Errorf("MSRP listener address %v is not TCP", addr)
	}
	s.epPort = tcp.Port
	u, err := newSIPUA("msrpgw-load-clients", func(u *sipUA) {
		var contact sip.Uri
		sip.ParseUri("sip:load@"+u.addr, &contact)
		if strings.EqualFold(transport, "tcp") {
			contact.UriParams = sip.NewParams()
			contact.UriParams.Add("transport", "tcp")
		}
		s.dua = &sipgo.DialogUA{Client: u.client, ContactHDR: sip.ContactHeader{Address: contact}}
		u.srv.OnInvite(s.handleInvite)
		u.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
			if c := s.dialog(req); c != nil && c.uas != nil {
				c.uas.ReadAck(req, tx)
			}
		})
		u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
			c := s.dialog(req)
			if c == nil {
				tx.Respond(sip.NewResponseFromRequest(req, 481, reason(481), nil))
				return
			}
			s.byesIn.Add(1)
			tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			s.release(c)
		})
	})
	if err != nil {
		s.ep.Close()
		return nil, err
	}
	s.sipUA = u
	return s, nil
}

func (s *sessionSide) msrpConfig() msrp.Config {
	// A deep write queue: open-loop senders queue SENDs faster than one round trip. Receive timestamps for
	// the wire latency (wire.go).
	return msrp.Config{CheckFromPath: true, WriteQueue: 1 << 16, Logger: s.log, RxTimestamps: true}
}

// close ends the clients' UA and MSRP endpoint; it may be called again.
func (s *sessionSide) close() {
	s.sipUA.close()
	s.ep.Close()
}

func (s *sessionSide) dialog(req *sip.Request) *chat {
	id := req.CallID()
	if id == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialogs[id.Value()]
}

func (s *sessionSide) newChat(idx int) *chat {
	c := &chat{side: s, idx: idx}
	ep := s.ep
	if s.connPerSession {
		// Its own endpoint, so Connect dials its own connection; it never listens (the gateway answers
		// passive to our actpass), so it advertises the shared listener's port.
		c.ep = msrp.NewEndpoint(s.msrpConfig())
		c.ep.SetAdvertise("127.0.0.1", s.epPort)
		ep = c.ep
	}
	c.ms = ep.NewSession(c)
	return c
}

func (s *sessionSide) media(c *chat, setup string) *sdp.Media {
	u := c.ms.LocalURI()
	return &sdp.Media{Host: u.Host, Port: u.Port, Path: []string{u.String()}, AcceptTypes: []string{"text/plain"}, Setup: setup}
}

// handleInvite answers the gateway's INVITE (MESSAGE-first flow) with a=setup:passive: the gateway connects.
func (s *sessionSide) handleInvite(req *sip.Request, tx sip.ServerTransaction) {
	idx, ok := s.inviteFor(req.Recipient.User)
	if !ok {
		tx.Respond(sip.NewResponseFromRequest(req, 404, reason(404), nil))
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, reason(488), nil))
		return
	}
	path, err := msrp.ParseSDPPath(strings.Join(offer.Path, " "))
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, reason(488), nil))
		return
	}
	c := s.newChat(idx)
	c.ms.SetPeerPath(path)
	dlg, err := s.dua.ReadInvite(req, tx)
	if err != nil {
		s.log.Warn("ReadInvite", "err", err)
		s.release(c)
		return
	}
	c.uas = dlg
	c.callID = req.CallID().Value()
	s.mu.Lock()
	s.dialogs[c.callID] = c
	s.mu.Unlock()
	s.onChat(c)
	if err := dlg.RespondSDP(s.media(c, "passive").Marshal(1, 1)); err != nil {
		s.log.Warn("answer INVITE", "err", err)
	}
}

// invite sets up a session-first chat: INVITE from fromURI to toURI through the gateway, offering actpass.
// It returns when the MSRP session is bound (we dialled, or the gateway did).
func (s *sessionSide) invite(ctx context.Context, idx int, fromURI, toURI string) (*chat, error) {
	c := s.newChat(idx)
	var ruri, from sip.Uri
	if err := sip.ParseUri(toURI, &ruri); err != nil {
		s.release(c)
		return nil, fmt.Errorf("bad To URI %q: %w", toURI, err)
	}
	if err := sip.ParseUri(fromURI, &from); err != nil {
		s.release(c)
		return nil, fmt.Errorf("bad From URI %q: %w", fromURI, err)
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(s.media(c, "actpass").Marshal(2, 1))
	req.SetDestination(s.gw)
	if strings.EqualFold(s.transport, "tcp") {
		req.SetTransport("TCP")
	} else if la, ok := s.pc.LocalAddr().(*net.UDPAddr); ok {
		// Out of the clients' listening socket, whose receive buffer holds a burst of answers (newSIPUA); a
		// socket sipgo opened for the destination has the kernel's default, ~100 datagrams, and 100 setups
		// in flight overflowed it: a dropped 200 cost its setup a 500 ms retransmission.
		req.Laddr = sip.Addr{IP: la.IP, Port: la.Port}
	}
	dlg, err := s.dua.WriteInvite(ctx, req)
	if err != nil {
		s.release(c)
		return nil, fmt.Errorf("INVITE: %w", err)
	}
	c.uac = dlg
	if err := s.waitAnswer(ctx, dlg); err != nil {
		s.release(c)
		return nil, fmt.Errorf("INVITE answer: %w", err)
	}
	c.callID = req.CallID().Value()
	s.mu.Lock()
	s.dialogs[c.callID] = c
	s.mu.Unlock()
	if err := dlg.Ack(ctx); err != nil {
		s.bye(ctx, c)
		return nil, fmt.Errorf("ACK: %w", err)
	}
	ans, err := sdp.Parse(dlg.InviteResponse.Body())
	if err != nil {
		s.bye(ctx, c)
		return nil, fmt.Errorf("gateway's SDP answer: %w", err)
	}
	path, err := msrp.ParseSDPPath(strings.Join(ans.Path, " "))
	if err != nil {
		s.bye(ctx, c)
		return nil, fmt.Errorf("gateway's a=path: %w", err)
	}
	c.ms.SetPeerPath(path)
	if sdp.OffererActive(ans.Setup) {
		if err := c.ms.Connect(ctx); err != nil {
			s.bye(ctx, c)
			return nil, fmt.Errorf("MSRP connect: %w", err)
		}
		return c, nil
	}
	select {
	case <-c.ms.Bound():
		return c, nil
	case <-ctx.Done():
		s.bye(ctx, c)
		return nil, fmt.Errorf("waiting for the gateway's MSRP connection: %w", ctx.Err())
	}
}

// waitAnswer waits for the INVITE's final answer until ctx ends (the setup's deadline, -setup-timeout).
//
// sipgo's WaitAnswer does not end with its context: with no response yet it waits for the INVITE
// transaction to time out (Timer B, 64×T1 = 32 s), to CANCEL a provisional answer should one come; after a
// provisional answer it CANCELs and waits up to another 32 s for the 487. A run against nothing answering
// took 32 s per setup that way, whatever -setup-timeout said. WaitAnswer returns at once when its context
// ends with the cause WaitAnswerForceCancelErr: it gets one that does when ctx ends, and an INVITE already
// answered provisionally is CANCELled here, once, without waiting for the answer to the CANCEL.
func (s *sessionSide) waitAnswer(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { cancel(sipgo.WaitAnswerForceCancelErr) })
	defer stop()
	err := dlg.WaitAnswer(wctx, sipgo.AnswerOptions{})
	if err == nil || ctx.Err() == nil {
		return err
	}
	if r := dlg.InviteResponse; r != nil && r.IsProvisional() {
		if cerr := s.cancelInvite(dlg.InviteRequest); cerr != nil {
			s.log.Warn("CANCEL", "err", cerr)
		}
	}
	return fmt.Errorf("no final answer: %w", ctx.Err())
}

// cancelInvite sends a CANCEL for inv (RFC 3261 §9.1: its Request-URI, top Via, From, To, Call-ID and
// CSeq number), outside any transaction.
func (s *sessionSide) cancelInvite(inv *sip.Request) error {
	req := sip.NewRequest(sip.CANCEL, inv.Recipient)
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	req.SetBody(nil)
	req.SetDestination(inv.Destination())
	req.SetTransport(inv.Transport())
	req.Laddr = inv.Laddr
	return s.client.WriteRequest(req)
}

// bye ends a chat from our side; the error is the BYE's.
func (s *sessionSide) bye(ctx context.Context, c *chat) error {
	c.ended.Store(true)
	var err error
	switch {
	case c.uac != nil:
		err = c.uac.Bye(ctx)
	case c.uas != nil:
		err = c.uas.Bye(ctx)
	}
	s.release(c)
	return err
}

// release frees a chat's MSRP session (and own endpoint) and forgets its dialog.
func (s *sessionSide) release(c *chat) {
	c.ended.Store(true)
	c.ms.Close()
	if c.ep != nil {
		c.ep.Close()
	}
	if c.callID != "" {
		s.mu.Lock()
		delete(s.dialogs, c.callID)
		s.mu.Unlock()
	}
}

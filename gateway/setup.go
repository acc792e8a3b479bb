package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file sets up the MSRP side of a session started by a MESSAGE (SPEC §3.1 steps 3–6): INVITE with our
// offer, the answer, the MSRP connection in whichever direction a=setup says, then the queued messages.

// setupFailure is why a session did not come up: o, what the MESSAGEs it covers are answered with (SPEC §5's
// table), and res, the INVITE's final response when one failed the setup.
type setupFailure struct {
	o   outcome
	res *outcome
	err error
}

// reported is the code and reason setup-failed carries (SPEC §5), as the reference's E_MSRP_GW_SETUP_FAILED
// does: the INVITE's own final response when one came (488 stays 488, where the MESSAGEs get 415), else the
// gateway's own.
func (f *setupFailure) reported() outcome {
	if f.res != nil {
		return *f.res
	}
	return f.o
}

func (f *setupFailure) Error() string {
	if f.err != nil {
		return fmt.Sprintf("%s: %v", f.o, f.err)
	}
	return f.o.String()
}

func failSetup(o outcome, err error) *setupFailure { return &setupFailure{o: o, err: err} }

// failInvite is the failure of a setup whose INVITE got the final response code, reason.
func failInvite(code int, reason string) *setupFailure {
	return &setupFailure{o: inviteOutcome(code, reason), res: &outcome{code, reason}}
}

// setupFromMessage runs in its own goroutine for each session a MESSAGE creates.
func (g *Gateway) setupFromMessage(s *Session, first *sip.Request) {
	start := time.Now()
	ctx, cancel := context.WithCancelCause(g.ctx)
	defer cancel(nil)
	s.mu.Lock()
	if s.st != stateSettingUp {
		s.mu.Unlock()
		return
	}
	s.cancel = cancel
	s.ms = g.msrp.NewSession(&msrpHandler{s: s})
	s.mu.Unlock()

	err := g.inviteAndConnect(ctx, s, first, start)
	if err != nil {
		var f *setupFailure
		if !errors.As(err, &f) {
			f = failSetup(outcomeMSRPConnFailed, err)
		}
		if cause := context.Cause(ctx); errors.Is(cause, errReplaced) || errors.Is(cause, errEnded) {
			// A newer INVITE took the key over, and its session carries our queue on; or the session was
			// ended (an operator, Shutdown), and that end failed the queue with its own outcome: no setup failed.
			return
		}
		g.setupFailed(s, f, first)
	}
}

// waitAnswer is dlg.WaitAnswer, safe from a sipgo v1.7.3 bug: when WaitAnswer's context ends after a
// provisional response, sipgo sends a CANCEL and dereferences its response, which is nil when the transport
// closed under it (the gateway closing during a setup; seen in the tests as a panic killing the process).
func waitAnswer(ctx context.Context, dlg *sipgo.DialogClientSession, opts sipgo.AnswerOptions) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sipgo WaitAnswer failed while cancelling: %v", r)
		}
	}()
	return dlg.WaitAnswer(ctx, opts)
}

// waitOrAbandon is waitAnswer, given up when abandoned closes first: the setup ended (setup_timeout, or the
// session replaced or ended) before a final response. It then returns errAbandoned at once and the INVITE
// transaction goes on in the background, where sipgo CANCELs it (ctx is cancelled already, without forcing):
// at once after a provisional response, else when one comes, as no CANCEL may be sent before (RFC 3261 §9.1).
// The setup does not wait for the 487, which a UAS need not send (§9.1: Timer B, 64·T1, bounds the wait). A
// 2xx arriving after all is ACKed and ended with BYE at once: the peer is never left with a dialog nobody ends.
func (g *Gateway) waitOrAbandon(ctx context.Context, s *Session, dlg *sipgo.DialogClientSession, opts sipgo.AnswerOptions, abandoned <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- waitAnswer(ctx, dlg, opts) }()
	select {
	case err := <-done:
		return err
	case <-abandoned:
		select {
		case err := <-done: // a final response came first
			return err
		default:
		}
	}
	g.goBackground(func() {
		err := <-done // bounded by the INVITE transaction (Timer B), or the gateway closing its transport
		if res := dlg.InviteResponse; res != nil && res.IsSuccess() {
			s.log.Info("2xx to an abandoned INVITE: ACK and BYE", "call_id", s.callID)
			g.ackAndBye(dlg)
			return
		}
		s.log.Debug("abandoned INVITE ended", "err", err, "call_id", s.callID)
	})
	return errAbandoned
}

// errAbandoned is waitOrAbandon's: the setup ended before the INVITE got any response.
var errAbandoned = errors.New("INVITE abandoned before a final response")

// errReplaced cancels a setup whose key a newer INVITE took over.
var errReplaced = errors.New("replaced by a newer INVITE")

// errSetupTimeout cancels a setup that ran past gateway.setup_timeout.
var errSetupTimeout = errors.New("setup_timeout passed")

// inviteAndConnect sets the session up and, when it comes up, makes it up (markUp).
func (g *Gateway) inviteAndConnect(ctx context.Context, s *Session, first *sip.Request, start time.Time) error {
	cfg := g.cfg.Gateway
	invite, err := g.buildInvite(s, first)
	if err != nil {
		return failSetup(outcome{500, "Server Internal Error"}, err)
	}
	s.mu.Lock()
	s.callID = callID(invite)
	s.mu.Unlock()
	g.udpc.fromListener(invite)
	forks := g.watchForks(invite)
	defer g.forks.Delete(invite) // its transactions are made by now: they keep the watch
	s.log.Info("session setup: sending INVITE", "call_id", s.callID, "msrp_session_id", s.ms.ID(), "ruri", invite.Recipient.String())

	// setup_timeout: before a final response CANCEL (408), after the 2xx BYE (480). The setup fails at once
	// and the INVITE is abandoned to waitOrAbandon, which cancels it, or ends it when its peer answers after all.
	var final atomic.Bool // written by WaitAnswer, read after the timeout
	timeoutCtx, cancelTimeout := context.WithCancelCause(ctx)
	defer cancelTimeout(nil)
	timer := time.AfterFunc(cfg.SetupTimeout, func() { cancelTimeout(errSetupTimeout) })
	defer timer.Stop()

	dlg, err := g.dialogUA.WriteInvite(timeoutCtx, invite)
	if err != nil {
		// The INVITE could not be sent (its connection refused, no route to the host): a transport failure,
		// treated as 503 (RFC 3261 §8.1.3.1). Not an MSRP connection failure, which would point an operator at
		// the wrong side; the log line of the failed setup carries err.
		return failSetup(outcomeTransportFailed, fmt.Errorf("sending INVITE: %w", err))
	}
	waitCtx, cancelWait := context.WithCancelCause(context.Background())
	defer cancelWait(nil)
	abandoned := make(chan struct{})
	stop := context.AfterFunc(timeoutCtx, func() {
		if g.ctx.Err() != nil {
			// No CANCEL when the gateway is closing: its transport goes away under the CANCEL.
			cancelWait(sipgo.WaitAnswerForceCancelErr)
			return
		}
		// sipgo sends the CANCEL once there is a provisional response; the setup does not wait for it.
		cancelWait(context.Cause(timeoutCtx))
		close(abandoned)
	})
	defer stop()
	answerOpts := sipgo.AnswerOptions{
		OnResponse: func(res *sip.Response) error {
			if !res.IsProvisional() {
				final.Store(true)
			}
			if res.IsSuccess() {
				forks.accept(res)
			}
			return nil
		},
	}
	err = g.waitOrAbandon(waitCtx, s, dlg, answerOpts, abandoned)
	// Each 401/407 is answered once with sip.credentials (auth.go); one not answered fails the setup (403).
	var challenged *sipgo.ErrDialogResponse
	var done answered
	for errors.As(err, &challenged) && isChallenge(challenged.Res) {
		if aerr := g.authorize(invite, challenged.Res, &done); aerr != nil {
			s.log.Warn("INVITE challenge not answered", "err", aerr, "code", challenged.Res.StatusCode)
			break
		}
		if dlg, err = g.dialogUA.WriteInvite(timeoutCtx, invite); err != nil {
			return failSetup(outcomeTransportFailed, fmt.Errorf("sending authenticated INVITE: %w", err))
		}
		err = g.waitOrAbandon(waitCtx, s, dlg, answerOpts, abandoned)
	}
	if errors.Is(err, errAbandoned) {
		return failSetup(outcomeSetupTimeout, err) // dlg belongs to waitOrAbandon's goroutine now
	}
	if err != nil {
		var rerr *sipgo.ErrDialogResponse
		if errors.As(err, &rerr) {
			return failInvite(rerr.Res.StatusCode, rerr.Res.Reason)
		}
		if res := dlg.InviteResponse; res != nil && res.IsSuccess() {
			// A 2xx crossed our CANCEL: take the dialog and end it.
			g.ackAndBye(dlg)
		}
		if timeoutCtx.Err() != nil {
			if errors.Is(context.Cause(timeoutCtx), errSetupTimeout) || !final.Load() {
				return failSetup(outcomeSetupTimeout, errSetupTimeout)
			}
		}
		if res := dlg.InviteResponse; res != nil && !res.IsProvisional() && !res.IsSuccess() {
			return failInvite(res.StatusCode, res.Reason)
		}
		if errors.Is(err, sip.ErrTransactionTransport) {
			// Its connection closed before a final response, which can no longer come: the transaction ended at
			// once (startSIP), a 503, not the 408 of a setup_timeout that has not passed.
			if res := dlg.InviteResponse; res != nil && res.IsProvisional() {
				// A provisional response came: the branch it made downstream (a callee ringing behind a proxy
				// that only lost the connection) may still be there. It is CANCELled over a new connection, as
				// the setup_timeout's CANCEL did before the close ended the transaction at once.
				g.cancelInvite(dlg)
			}
			return failSetup(outcomeTransportFailed, err)
		}
		return failSetup(outcomeSetupTimeout, err)
	}

	// 2xx: the dialog exists. ACK it, and learn the peer's media. Under the lock that end() takes the dialog
	// with: a session ended as the 2xx came had no dialog for end() to BYE or forget, so it is ended here.
	s.mu.Lock()
	ended := s.st >= stateEnding
	acked := make(chan struct{})
	if !ended {
		s.uac, s.acked = dlg, acked
		s.dialogKey = dialogKey(callID(invite), fromTag(invite))
		if to := dlg.InviteResponse.To(); to != nil {
			s.remoteTag, _ = to.Params.Get("tag")
		}
		g.dialogs.Store(s.dialogKey, s)
	}
	s.mu.Unlock()
	if ended {
		g.ackAndBye(dlg)
		return failSetup(outcomeSessionEnded, errEnded)
	}
	if g.beforeACK != nil {
		g.beforeACK(s)
	}
	err = g.ackUAC(ctx, dlg)
	close(acked) // sipgo confirms the dialog only once the ACK is written: a BYE before that is not sent (bye)
	if err != nil {
		return failSetup(outcomeTransportFailed, fmt.Errorf("sending ACK: %w", err))
	}
	res := dlg.InviteResponse
	media, err := parseSIPBodySDP(res.ContentType(), res.Body())
	if err != nil {
		g.byeLater(s)
		return failSetup(outcome{480, "Bad SDP answer"}, err)
	}
	if err := s.applyPeerMedia(media, sdp.OffererActive(media.Setup)); err != nil {
		g.byeLater(s)
		return failSetup(outcome{480, "Bad SDP answer"}, err)
	}
	if err := g.bindSetup(timeoutCtx, s, start); err != nil {
		g.byeLater(s)
		if errors.Is(context.Cause(timeoutCtx), errSetupTimeout) {
			return failSetup(outcome{480, "MSRP connection not established in time"}, err)
		}
		// An error response to our first SEND fails the setup with its mapped code (SPEC §3.1 step 6).
		return failSetup(sendOutcome(0, err), err)
	}
	return nil
}

// connectMSRP binds the session's MSRP side: we connect when we are the active side, else we wait for the
// peer's connection and first SEND.
func (g *Gateway) connectMSRP(ctx context.Context, s *Session) error {
	s.mu.Lock()
	ms, active := s.ms, s.weActive
	s.mu.Unlock()
	if active {
		return ms.Connect(ctx)
	}
	select {
	case <-ms.Bound():
		return nil
	case err := <-s.peerRejected:
		return fmt.Errorf("peer's connection refused: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("peer did not connect: %w", context.Cause(ctx))
	}
}

// applyPeerMedia records the peer's SDP, the MSRP path it gives, and whether we are the active side as the
// offer/answer exchange that brought m decided (the caller knows which side offered).
func (s *Session) applyPeerMedia(m *sdp.Media, weActive bool) error {
	// ParseSDPPath also refuses a URI without a port (RFC 4975 §8.2): there would be nothing to connect to.
	path, err := msrp.ParseSDPPath(strings.Join(m.Path, " "))
	if err != nil {
		return fmt.Errorf("a=path: %w", err)
	}
	if len(path) == 0 {
		return errors.New("a=path is empty")
	}
	if weActive && s.ms.LocalURI().Secure && !path[0].Secure {
		// Our connection to it would be plain TCP, on which an msrps session takes no request (RFC 4975
		// §7.3): our messages would go out in the clear and every one of the peer's would get 481.
		return fmt.Errorf("a=path %s is not msrps, and we would connect to it for our msrps session", path[0].String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == stateUp && s.cancel != nil {
		// The rebind of an earlier re-INVITE: this one supersedes it before SetPeerPath unbinds (and closes)
		// the connection it made, so that it sees errRebound, not a lost connection that would end the session.
		s.cancel(errRebound)
		s.cancel = nil
	}
	if s.st == stateSettingUp && s.moved != nil {
		// A re-INVITE before the session is up: the binding in progress, or made, may be to the old path.
		// Closed before SetPeerPath, so that bindSetup knows why when the change fails its binding; under
		// the same lock as markUp, which then finds the session unbound when the change unbound it.
		close(s.moved)
		s.moved = nil
	}
	s.peer = m
	s.weActive = weActive
	fingerprints := m.Fingerprints
	if len(path) > 1 {
		// The first hop is a relay (RFC 4976), which never sees the SDP: the fingerprint is of the peer's
		// certificate, never of the relay's, which is checked as a peer without one is (RFC 6135 §4.3).
		fingerprints = nil
	}
	// SetPeerPath checks a connection that bound the session before this SDP came (msrp.Session.SetPeerPath).
	s.ms.SetPeerVerifier(s.gw.msrpPeerVerifier(s, s.callID, fingerprints, path[0]))
	s.ms.SetPeerPath(path)
	if s.st == stateUp {
		select {
		case <-s.ms.Bound():
		default:
			// A new first hop unbound the session (a re-INVITE, SPEC §3.2 step 6). Under the same lock as
			// submit: no MESSAGE meets the unbound session, they queue until rebind is done.
			s.rebinding = true
		}
	}
	return nil
}

// bindSetup binds the MSRP side of a session being set up (connectMSRP) and makes it up. A re-INVITE that
// changes the peer's path meanwhile (SPEC §3.2 step 6) makes it bind again, to the new path, within the same
// ctx (setup_timeout): we connect when we are the active side, else we wait for the peer's new connection.
// The queue is only sent once the session is bound to the peer's current path.
func (g *Gateway) bindSetup(ctx context.Context, s *Session, start time.Time) error {
	for {
		s.mu.Lock()
		if s.moved == nil {
			s.moved = make(chan struct{})
		}
		moved := s.moved
		s.mu.Unlock()
		attempt, cancel := context.WithCancelCause(ctx)
		go func() {
			select {
			case <-moved:
				cancel(errRebound)
			case <-attempt.Done():
			}
		}()
		err := g.connectMSRP(attempt, s)
		cancel(nil)
		if err == nil && s.markUp(start) {
			return nil
		}
		select {
		case <-moved:
			if ctx.Err() == nil {
				s.log.Info("peer path changed during setup, binding again", "msrp_session_id", s.ms.ID())
				continue
			}
		default:
		}
		if err == nil {
			err = fmt.Errorf("%w: unbound before the session was up", msrp.ErrConnLost)
		}
		return err
	}
}

// markUp makes a session up and sends what was queued during setup. It returns false, and does nothing, when
// the session is not bound (any more): a re-INVITE changed the peer's path since it bound, or it was lost; or
// a MESSAGE-first session's connection was lost before (lostInSetup).
func (s *Session) markUp(start time.Time) bool {
	s.mu.Lock()
	if s.st != stateSettingUp {
		s.mu.Unlock()
		return true
	}
	select {
	case <-s.ms.Bound():
	default:
		s.mu.Unlock()
		return false
	}
	if s.lostInSetup {
		s.mu.Unlock()
		return false // bound again after a loss that no HandleClose would tell of once up
	}
	s.st = stateUp
	s.upAt = time.Now()
	s.cancel = nil
	s.confirmLocked()
	s.flushLocked()
	s.mu.Unlock()
	s.armTimers()
	e := s.baseEvent(event.SessionStarted)
	e.Duration = time.Since(start)
	s.gw.publish(e)
	s.log.Info("session up", "origin", s.origin, "call_id", e.CallID, "msrp_session_id", e.MSRPSessionID, "setup", e.Duration)
	return true
}

// setupFailed raises setup-failed (SPEC §5): the event is published, every queued message fails with the
// mapped code, and the page-mode user is told once. Not when the session was ended otherwise meanwhile: that
// end failed the messages and told the user.
func (g *Gateway) setupFailed(s *Session, f *setupFailure, first *sip.Request) {
	if !g.end(s, ending{reason: "setup_failed", o: f.o, failure: f}) {
		return
	}
	sf := &g.cfg.Gateway.SetupFailed
	if s.origin == originMessage && sf.Notify {
		// $excerpt: the MESSAGE that set the session up, the first of those the failure covers.
		g.notify(s.coords, sf, first, s.key, f.reported(), requestContent(first))
	}
}

// buildInvite makes the INVITE of SPEC §3.1 step 3: to the MESSAGE's Request-URI, From A To B, our offer.
func (g *Gateway) buildInvite(s *Session, first *sip.Request) (*sip.Request, error) {
	ruri := first.Recipient
	ruri.Headers = nil
	req := sip.NewRequest(sip.INVITE, ruri)
	from := &sip.FromHeader{Address: first.From().Address, Params: sip.NewParams()}
	from.Address.Headers = nil
	from.DisplayName = first.From().DisplayName
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: first.To().Address, DisplayName: first.To().DisplayName, Params: sip.NewParams()}
	to.Address.Headers = nil
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(newCallID())
	req.AppendHeader(&cid)
	contact := g.contact
	if p := g.cfg.Gateway.Message.ContactParams; p != "" {
		contact = *g.contact.Clone()
		for _, kv := range strings.Split(p, ";") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			if contact.Params == nil {
				contact.Params = sip.NewParams()
			}
			contact.Params.Add(k, v)
		}
	}
	req.AppendHeader(&contact)
	for _, h := range g.cfg.Gateway.Message.InviteHeaders {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, fmt.Errorf("gateway.message.invite_headers: %q is not Name: value", h)
		}
		req.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
	}
	s.mu.Lock()
	local := g.localMedia(s, s.route.AcceptTypes, s.route.AcceptWrappedTypes, "actpass")
	s.local = local
	body := local.Marshal(s.sdpID, s.sdpVer)
	s.mu.Unlock()
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	g.route(req)
	offUDPIfLarge(req, requestSize(req))
	return req, nil
}

// localMedia describes our side of a session's MSRP media. Accept-wrapped-types go only with a container to
// wrap them in (RFC 4975 §8.6, SPEC §3.1 step 3): none when accept does not take message/cpim.
func (g *Gateway) localMedia(s *Session, accept, wrapped []string, setup string) *sdp.Media {
	if !sdp.Match(accept, ctypeCPIM) {
		wrapped = nil
	}
	u := s.ms.LocalURI()
	m := &sdp.Media{
		Secure:             u.Secure,
		Host:               u.Host,
		Port:               u.Port,
		Path:               []string{u.String()},
		AcceptTypes:        accept,
		AcceptWrappedTypes: wrapped,
		MaxSize:            g.cfg.Gateway.MaxMessageSize,
		Setup:              setup,
		Direction:          sdp.SendRecv, // an answer sets the one answering the offer's
	}
	if u.Secure {
		// Only a TLS connection to us shows the certificate (RFC 4975 §14.4); with a plain listener msrp.tls
		// is only our client certificate towards msrps peers.
		m.Fingerprints = g.msrpTLS.fingerprints
	}
	return m
}

// route points a generated request at the outbound proxy when one is set, and sends it over TLS when that
// next hop (the proxy, else the Request-URI) is a sips: URI: RFC 3261 §26.2 wants TLS all the way to it.
// sipgo takes TLS for sips: only when the URI says ;transport=tcp; without a transport it would send UDP.
func (g *Gateway) route(req *sip.Request) {
	if g.proxy != nil {
		req.PrependHeader(&sip.RouteHeader{Address: *g.proxy})
	}
	next := req.Recipient
	if r := req.Route(); r != nil {
		next = r.Address
	}
	if next.IsEncrypted() && strings.EqualFold(req.Transport(), "UDP") {
		req.SetTransport("TLS")
	}
}

// offUDPIfLarge moves a built request off UDP when it could be larger than 1300 bytes on the wire (RFC 3261
// §18.1.1, RFC 3428 §8): size, its length as built (requestSize: long URIs and extra headers included), plus
// what is added when it is sent.
func offUDPIfLarge(req *sip.Request, size int) {
	if size+sentHeadersSize > udpMaxRequest && strings.EqualFold(req.Transport(), "UDP") {
		req.SetTransport("TCP")
	}
}

// udpMaxRequest is the largest request sent over UDP (RFC 3261 §18.1.1).
const udpMaxRequest = 1300

// sentHeadersSize bounds what the client adds to a request when it sends it: Via (with branch and rport;
// the host is the advertised contact's), CSeq, Max-Forwards and Content-Length.
const sentHeadersSize = 220

// requestSize is the length of req as written now.
func requestSize(req *sip.Request) int {
	var n byteCounter
	req.StringWrite(&n)
	return int(n)
}

// byteCounter is an io.StringWriter that only counts.
type byteCounter int

func (c *byteCounter) WriteString(s string) (int, error) {
	*c += byteCounter(len(s))
	return len(s), nil
}
func (c *byteCounter) Write(b []byte) (int, error) { *c += byteCounter(len(b)); return len(b), nil }

func (g *Gateway) ackAndBye(dlg *sipgo.DialogClientSession) {
	g.goBackground(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.ackUAC(ctx, dlg); err == nil {
			g.byeUAC(ctx, nil, dlg, nil)
		}
	})
}

// cancelInvite sends, in the background, the CANCEL of dlg's INVITE whose transaction already ended (RFC 3261
// §9.1: its top Via, From, To, Call-ID, CSeq number and Route), built as sipgo builds the one of WaitAnswer.
func (g *Gateway) cancelInvite(dlg *sipgo.DialogClientSession) {
	invite := dlg.InviteRequest
	req := sip.NewRequest(sip.CANCEL, invite.Recipient)
	req.AppendHeader(sip.HeaderClone(invite.Via()))
	req.AppendHeader(sip.HeaderClone(invite.From()))
	req.AppendHeader(sip.HeaderClone(invite.To()))
	req.AppendHeader(sip.HeaderClone(invite.CallID()))
	sip.CopyHeaders("Route", invite, req)
	req.SetSource(invite.Source())
	req.Laddr = invite.Laddr
	g.goBackground(func() {
		ctx, cancel := context.WithTimeout(g.ctx, sip.Timer_F+time.Second)
		defer cancel()
		res, err := dlg.Do(ctx, req)
		if err == nil {
			g.log.Info("CANCEL of an INVITE whose connection closed", "code", res.StatusCode, "call_id", callID(invite))
		} else {
			g.log.Info("CANCEL of an INVITE whose connection closed failed", "err", err, "call_id", callID(invite))
		}
	})
}

// parseSIPBodySDP finds and parses the SDP of a SIP body (plain or multipart).
func parseSIPBodySDP(ct *sip.ContentTypeHeader, body []byte) (*sdp.Media, error) {
	ctype := "application/sdp"
	if ct != nil {
		ctype = ct.Value()
	}
	raw, _, err := sdp.SplitBody(ctype, body)
	if err != nil {
		return nil, err
	}
	return sdp.Parse(raw)
}

func dialogKey(callID, localTag string) string { return callID + "\x00" + localTag }

func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

func toTag(req *sip.Request) string {
	if t := req.To(); t != nil {
		v, _ := t.Params.Get("tag")
		return v
	}
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }

// newCallID returns a fresh Call-ID with 128 random bits.
func newCallID() string { return msrp.NewSessionID() + "@msrpgw" }

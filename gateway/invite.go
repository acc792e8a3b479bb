package gateway

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file answers INVITEs from the session-mode side (SPEC §3.2, the reference's msrp_gw_answer), re-INVITEs,
// ACKs and BYEs.

func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	// A re-INVITE may come from the dialog's peer itself, as its ACK and BYE may (dialogSource): sip.trusted
	// need not hold it when no proxy on the way Record-Routes. Any other INVITE needs a trusted source.
	inDialog := g.inDialog(req)
	if inDialog != nil {
		if !g.dialogSource(inDialog, req) {
			g.refuse(req, tx, 403, "Forbidden", "source "+req.Source()+" is neither in sip.trusted nor the dialog's peer")
			return
		}
	} else if !g.checkTrusted(req, tx) {
		return
	}
	if p := addressProblem(req, false); p != "" {
		g.refuse(req, tx, 400, "Bad Request", p)
		return
	}
	if inDialog == nil && toTag(req) != "" {
		g.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	if a, bad := badExtension(req); bad {
		g.refuse(req, tx, a.code, a.reason, a.warning, a.hdrs...)
		return
	}
	if inDialog != nil {
		g.onReinvite(inDialog, req, tx)
		return
	}
	// A repeat of a recent INVITE (SPEC §8) waits for the first's final response and gets it again: it is the
	// same request, not a newer INVITE that replaces the session. Its transaction ends when this returns.
	repeated := make(chan answer, 1)
	if g.recent.begin(req, func(a answer) { repeated <- a }) {
		a := <-repeated
		g.log.Info("repeated INVITE answered as the first", "code", a.code, "call_id", callID(req), "source", req.Source())
		if a.res == nil {
			// The first was no INVITE but a request whose CSeq named INVITE (malformed): answer in kind.
			g.respond(req, tx, a.code, a.reason, a.warning, a.hdrs...)
		} else if err := tx.Respond(repeatResponse(req, a.res)); err != nil {
			g.responseFailed(req, a.code, err)
		}
		return
	}
	rtx := &recordedTx{ServerTransaction: tx, recent: g.recent, req: req}
	defer rtx.settle()
	tx = rtx
	if g.draining.Load() {
		g.refuse(req, tx, 503, "Service Unavailable", "draining: no new sessions")
		return
	}
	if req.Contact() == nil {
		g.refuse(req, tx, 400, "Bad Request", "INVITE without Contact")
		return
	}

	// The offer: early (in the INVITE, possibly next to a first CPIM message in multipart/mixed) or late
	// (none: we offer in the 200 and the answer comes with the ACK).
	var offer *sdp.Media
	var firstParts []sdp.Part
	if len(req.Body()) > 0 {
		ctype := "application/sdp"
		if ct := req.ContentType(); ct != nil {
			ctype = ct.Value()
		}
		raw, others, err := sdp.SplitBody(ctype, req.Body())
		if err != nil {
			g.refuse(req, tx, 488, "Not Acceptable Here", "no SDP in the INVITE body: "+err.Error())
			return
		}
		if offer, err = sdp.Parse(raw); err != nil {
			g.refuse(req, tx, 488, "Not Acceptable Here", "unusable SDP offer: "+err.Error())
			return
		}
		if offer.FileSelector != "" {
			// Refused before it can replace the key's chat session: a file is no chat message.
			g.refuse(req, tx, 488, "Not Acceptable Here", errFileTransfer)
			return
		}
		firstParts = others
	}

	rt, err := g.routeBy(g.router.RouteInvite, req)
	if err != nil {
		a := refusalOf(err)
		g.refuse(req, tx, a.code, a.reason, a.warning)
		return
	}
	if p := coordsProblem(rt); p != "" {
		g.refuse(req, tx, 400, "Bad Request", p)
		return
	}
	accept, wrapped := rt.AcceptTypes, rt.AcceptWrappedTypes
	setup, weActive := "actpass", false
	if offer != nil {
		accept = sdp.Common(rt.AcceptTypes, offer.AcceptTypes)
		if len(accept) == 0 {
			g.refuse(req, tx, 488, "Not Acceptable Here", "no common content type: offered "+strings.Join(offer.AcceptTypes, " ")+", configured "+strings.Join(rt.AcceptTypes, " "))
			return
		}
		setup, weActive = sdp.AnswerSetup(offer.Setup)
	}

	s := newSession(g, rt.Key, originInvite)
	s.answered = make(chan struct{})
	s.coords = Coords{From: rt.From, To: rt.To, RURI: rt.RURI}
	s.route = Route{Key: rt.Key, AcceptTypes: accept, AcceptWrappedTypes: wrapped}
	s.callID = callID(req)
	s.remoteCSeq, s.hasRemoteCSeq = req.CSeq().SeqNo, true
	s.weActive = weActive
	s.firstParts = firstParts // before the 200 leaves: the peer may SEND as soon as it has it
	s.ms = g.msrp.NewSession(&msrpHandler{s: s})
	if offer != nil {
		if err := s.applyPeerMedia(offer, weActive); err != nil {
			s.ms.Close()
			g.refuse(req, tx, 488, "Not Acceptable Here", "unusable SDP offer: "+err.Error())
			return
		}
	}
	s.local = g.localMedia(s, accept, wrapped, setup)
	if offer != nil {
		// The answer has the offer's m= lines, those we do not take rejected (RFC 3264 §6), and the direction
		// that answers the offer's (RFC 3264 §6.1: a sendonly chat, e.g. RCS Large Message Mode, gets recvonly).
		s.local.MLines, s.local.Index, s.local.Time = offer.MLines, offer.Index, offer.Time
		s.local.Direction = sdp.AnswerDirection(offer.Direction)
	}

	// Session bounds (limits.go); a newer INVITE for a live key replaces that session and is not refused.
	if err := g.limits.admitSession(s, sourceHost(req), g.table.Get(rt.Key) != nil); err != nil {
		s.ms.Close()
		g.refuse(req, tx, 503, "Service Unavailable", "new session refused: "+err.Error(), g.retryAfter())
		return
	}
	dlg, err := g.dialogUA.ReadInvite(req, tx)
	if err != nil {
		g.limits.releaseSession(s)
		s.ms.Close()
		g.refuse(req, tx, 400, "Bad Request", err.Error())
		return
	}
	s.uas = dlg
	s.dialogKey = dialogKey(s.callID, toTag(dlg.InviteRequest))
	s.remoteTag = fromTag(req)
	g.dialogs.Store(s.dialogKey, s)

	// A newer INVITE wins (SPEC §3.2 step 3): the old session ends, its queued messages move here.
	if old := g.table.Put(s); old != nil {
		g.replace(old, s)
	}
	g.log.Info("session created", "key", s.key, "origin", originInvite, "call_id", s.callID, "msrp_session_id", s.ms.ID())

	start := time.Now()
	ctx, cancel := context.WithCancelCause(g.ctx)
	defer cancel(nil)
	ctx, cancelTimeout := context.WithTimeout(ctx, g.cfg.Gateway.SetupTimeout)
	defer cancelTimeout()
	s.mu.Lock()
	answering := s.st == stateSettingUp
	if answering {
		// Ending the session (an operator, a newer INVITE for the key, Shutdown) stops its setup (end.go), which
		// would otherwise keep this handler, and its limits.max_sip_handlers slot, until setup_timeout.
		s.cancel = cancel
	}
	body := s.local.Marshal(s.sdpID, s.sdpVer)
	s.mu.Unlock()
	if !answering {
		// Ended before its 200 (a newer INVITE for the key, an operator): there is no dialog to BYE, the INVITE
		// is refused.
		close(s.answered)
		g.refuse(req, tx, 480, "Temporarily Unavailable", "session ended before it was answered")
		return
	}
	err = dlg.RespondSDP(body)
	close(s.answered)
	if err != nil {
		// Cancelled, or no ACK for our 200.
		s.log.Info("INVITE not completed", "err", err, "call_id", s.callID)
		g.endSession(s, "not_completed", outcomeSessionEnded, !errors.Is(err, sip.ErrTransactionCanceled))
		return
	}
	// The ACK came. sipgo would keep the transaction in the Accepted state (RFC 6026 §7.1) for 32 s, only to
	// absorb repeats of the INVITE, which g.recent answers anyway; with it the whole parsed INVITE, its 2xx
	// and the dialog sipgo made (several KiB per session, the bulk of a setup's memory once the session is up:
	// confirmedDialog).
	tx.Terminate()
	s.mu.Lock()
	noAnswer := s.peer == nil
	s.mu.Unlock()
	if noAnswer {
		s.log.Warn("late-offer INVITE: no usable SDP answer in the ACK", "call_id", s.callID)
		g.endSession(s, "no_sdp_answer", outcomeMSRPConnFailed, true)
		return
	}
	// The first message of an RCS INVITE (multipart/mixed) is delivered like any SEND (SPEC §3.2 step 7).
	g.deliverFirst(s)
	if err := g.bindSetup(ctx, s, start); err != nil && !s.ending() {
		s.log.Warn("MSRP side did not come up", "err", err, "call_id", s.callID, "msrp_session_id", s.ms.ID())
		g.endSession(s, "msrp_failed", sendOutcome(0, err), true)
	}
}

// errFileTransfer is the Warning of a 488 to an offer of a file transfer (RFC 5547).
const errFileTransfer = "a file transfer (a=file-selector, RFC 5547) is not served: the gateway carries chat messages"

// onAck completes our 200 (and carries the answer of a late-offer INVITE).
func (g *Gateway) onAck(req *sip.Request, tx sip.ServerTransaction) {
	s := g.inDialog(req)
	if s == nil {
		return
	}
	if !g.dialogSource(s, req) {
		// An ACK gets no answer, 403 neither. Its SDP answer would say where the gateway connects and sends
		// the session's messages: another host naming the dialog is ignored, as if its ACK were lost.
		s.log.Info("ACK ignored", "why", "source "+req.Source()+" is neither in sip.trusted nor the dialog's peer", "call_id", s.callID)
		return
	}
	if p := addressProblem(req, false); p != "" {
		// An ACK gets no answer: a broken one is ignored, as if lost.
		s.log.Info("ACK ignored", "why", p, "call_id", s.callID)
		return
	}
	var cseq uint32
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}
	s.mu.Lock()
	uas, late := s.uas, s.peer == nil
	// The answer to the offer in our 2xx to a re-INVITE without SDP; a retransmitted ACK does not take it again.
	reanswer := !late && s.offerCSeq != 0 && s.offerCSeq == cseq
	if reanswer {
		s.offerCSeq = 0
	}
	s.mu.Unlock()
	if (late || reanswer) && len(req.Body()) > 0 {
		if m, err := parseSIPBodySDP(req.ContentType(), req.Body()); err != nil {
			s.log.Warn("unusable SDP answer in ACK", "err", err)
		} else if reanswer {
			g.followAnswer(s, m)
		} else if err := s.applyPeerMedia(m, sdp.OffererActive(m.Setup)); err != nil {
			// We offered actpass in the 200: the answer decides who connects.
			s.log.Warn("unusable a=path in ACK", "err", err)
		}
	}
	if cseq != 0 {
		s.mu.Lock()
		if s.reinvite.cseq == cseq {
			s.reinvite.stop() // the 2xx to a re-INVITE is acknowledged: no more retransmissions
		}
		s.mu.Unlock()
	}
	if uas != nil {
		if err := uas.ReadAck(req, tx); err != nil {
			s.log.Debug("ACK does not match our 200", "err", err)
		}
	}
}

// onReinvite answers a re-INVITE with our current SDP (SPEC §3.2 step 6) and follows a changed peer path.
// The peer is the offerer now: our answer says active or passive, keeping the current roles unless the
// re-offer decides otherwise (sdp.ReanswerSetup).
func (g *Gateway) onReinvite(s *Session, req *sip.Request, tx sip.ServerTransaction) {
	cseq := req.CSeq().SeqNo
	s.mu.Lock()
	if last, ok := s.takeRemoteCSeqLocked(cseq); !ok {
		s.mu.Unlock()
		g.refuse(req, tx, 500, "Server Internal Error", outOfOrder("re-INVITE", cseq, last))
		return
	}
	local, weActive := *s.local, s.weActive
	s.mu.Unlock()
	var changed bool
	if len(req.Body()) > 0 {
		m, err := parseSIPBodySDP(req.ContentType(), req.Body())
		if rm := (*sdp.RemovedError)(nil); errors.As(err, &rm) {
			g.streamRemoved(s, req, tx, local, rm)
			return
		}
		if err != nil {
			g.refuse(req, tx, 488, "Not Acceptable Here", "unusable SDP in re-INVITE: "+err.Error())
			return
		}
		if m.FileSelector != "" {
			g.refuse(req, tx, 488, "Not Acceptable Here", errFileTransfer)
			return
		}
		if len(sdp.Common(local.AcceptTypes, m.AcceptTypes)) == 0 {
			// As for a first offer (RFC 4975 §8.6): a 200 would leave a session where every message fails.
			g.refuse(req, tx, 488, "Not Acceptable Here", "no common content type: offered "+strings.Join(m.AcceptTypes, " ")+", ours "+strings.Join(local.AcceptTypes, " "))
			return
		}
		setup, active := sdp.ReanswerSetup(m.Setup, weActive)
		dir := sdp.AnswerDirection(m.Direction)
		s.mu.Lock()
		old := s.peer
		s.mu.Unlock()
		changed = old == nil || strings.Join(old.Path, " ") != strings.Join(m.Path, " ")
		if changed {
			if err := s.applyPeerMedia(m, active); err != nil {
				g.refuse(req, tx, 488, "Not Acceptable Here", "unusable SDP in re-INVITE: "+err.Error())
				return
			}
		}
		s.mu.Lock()
		if !changed {
			// The same path, but the re-offer is the peer's whole description now (RFC 3264 §8): its
			// accept-types and max-size decide what we send from here on.
			s.peer = m
		}
		s.weActive = active
		if local.Setup != setup || local.Direction != dir || !slices.Equal(local.MLines, m.MLines) || local.Index != m.Index || local.Time != m.Time {
			// The answer has the re-offer's m= lines and t= (RFC 3264 §6), as the first answer had the offer's,
			// and answers its direction.
			local.Setup, local.Direction, local.MLines, local.Index, local.Time = setup, dir, m.MLines, m.Index, m.Time
			s.local = &local
			s.sdpVer++ // RFC 3264 §8: a changed description gets the next version
		}
		s.mu.Unlock()
	} else {
		// No offer: our SDP is the offer (RFC 6135 §4.2.2: actpass, the gateway is reachable), answered in the
		// ACK (onAck, followAnswer).
		if local.Setup != sdp.SetupActPass {
			s.mu.Lock()
			local.Setup = sdp.SetupActPass
			s.local = &local
			s.sdpVer++ // RFC 3264 §8: a changed description gets the next version
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	if len(req.Body()) == 0 {
		s.offerCSeq = cseq
	} else {
		s.offerCSeq = 0
	}
	if c := req.Contact(); c != nil {
		// A re-INVITE is a target refresh request (RFC 3261 §12.2.2): our later requests in the dialog (the BYE)
		// go to its Contact.
		s.target = c.Address.Clone()
	}
	body := local.Marshal(s.sdpID, s.sdpVer)
	s.mu.Unlock()
	res := sip.NewSDPResponseFromRequest(req, body)
	res.AppendHeader(&g.contact)
	if err := g.respondReinvite(s, req, tx, res); err != nil {
		// The session follows the new path all the same, as an operator would expect of a peer that asked for
		// it: the old path is left already (applyPeerMedia unbound it), so there is nothing to go back to, and
		// ending the session would cut a chat for what is mostly a passing transport error. Over UDP the peer
		// repeats its re-INVITE, and the repeat gets our answer (its path now unchanged, the rebind started
		// below goes on). A peer that never gets one ends the dialog itself (RFC 3261 §14.1); one that neither
		// connects nor ends it meets the rebind's setup_timeout: BYE, the MESSAGEs queued meanwhile failing with
		// 480, as for any failed rebind. Returning here would leave the session rebinding with nobody to finish
		// it, its MESSAGEs queued until a session timer ended it.
		s.log.Warn("re-INVITE answer failed", "err", err, "call_id", s.callID, "msrp_session_id", s.ms.ID())
	}
	s.mu.Lock()
	rebinding := s.rebinding
	s.mu.Unlock()
	if changed && rebinding {
		g.goBackground(func() { g.rebind(s) })
	}
}

// streamRemoved answers a re-offer that removes the chat stream (m=message on port 0, RFC 3264 §8.2) with the
// stream marked port 0 in the same place, and ends the session: a dialog without its chat has nothing left to
// carry. The BYE follows the 200; what the session still holds fails as at any other end (SPEC §5).
func (g *Gateway) streamRemoved(s *Session, req *sip.Request, tx sip.ServerTransaction, local sdp.Media, rm *sdp.RemovedError) {
	local.Port, local.MLines, local.Index = 0, rm.MLines, rm.Index
	s.mu.Lock()
	s.offerCSeq = 0
	s.sdpVer++
	body := local.Marshal(s.sdpID, s.sdpVer)
	s.mu.Unlock()
	s.log.Info("re-INVITE removes the chat stream", "call_id", s.callID, "msrp_session_id", s.ms.ID())
	res := sip.NewSDPResponseFromRequest(req, body)
	res.AppendHeader(&g.contact)
	if err := g.respondReinvite(s, req, tx, res); err != nil {
		s.log.Warn("re-INVITE answer failed", "err", err, "call_id", s.callID, "msrp_session_id", s.ms.ID())
	}
	g.goBackground(func() { g.endSession(s, "stream_removed", outcomeSessionEnded, true) })
}

// followAnswer takes m, the peer's answer in the ACK to our offer in the 2xx to a re-INVITE without SDP, as
// onReinvite takes a re-offer: we offered actpass, so the answer's a=setup decides who connects, and a changed
// a=path makes the active side reconnect (SPEC §3.2 step 6). An unusable a=path leaves the session without a
// path the peer still uses: it ends, with BYE, as one whose late-offer INVITE's ACK had no usable answer.
func (g *Gateway) followAnswer(s *Session, m *sdp.Media) {
	active := sdp.OffererActive(m.Setup)
	s.mu.Lock()
	if s.peer != nil && strings.Join(s.peer.Path, " ") == strings.Join(m.Path, " ") {
		s.peer, s.weActive = m, active
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if err := s.applyPeerMedia(m, active); err != nil {
		s.log.Warn("unusable a=path in the ACK to a re-INVITE", "err", err, "call_id", s.callID)
		g.goBackground(func() { g.endSession(s, "no_sdp_answer", outcomeMSRPConnFailed, true) })
		return
	}
	s.mu.Lock()
	rebinding := s.rebinding
	s.mu.Unlock()
	if rebinding {
		g.goBackground(func() { g.rebind(s) })
	}
}

// reinviteAnswer is the 2xx to a re-INVITE that the gateway retransmits until the ACK with its CSeq comes.
type reinviteAnswer struct {
	cseq  uint32
	acked chan struct{} // closed by stop; nil when nothing is retransmitted
}

// stop ends the retransmissions. Called with the session's lock held.
func (a *reinviteAnswer) stop() {
	if a.acked != nil {
		close(a.acked)
	}
	*a = reinviteAnswer{}
}

// respondReinvite sends res, the 2xx to req, a re-INVITE. Over UDP it passes res to the transport again
// until its ACK comes (onAck), at intervals from T1 doubling up to T2, until the transaction ends (Timer L,
// 64·T1), or the session: the UAS core's part of RFC 3261 §13.3.1.4, which sipgo's dialog does only for the
// INVITE that made the dialog. sipgo's transaction does not retransmit a 2xx and absorbs the INVITE's
// retransmissions (RFC 6026 §7.1): without this, one lost 200 left the peer's re-INVITE unanswered until it
// gave up and ended the dialog.
func (g *Gateway) respondReinvite(s *Session, req *sip.Request, tx sip.ServerTransaction, res *sip.Response) error {
	if sip.IsReliable(req.Transport()) {
		return tx.Respond(res)
	}
	acked := make(chan struct{})
	s.mu.Lock()
	// An earlier re-INVITE's 2xx is superseded. This one's is registered before it leaves: its ACK may come at
	// once.
	s.reinvite.stop()
	s.reinvite = reinviteAnswer{cseq: req.CSeq().SeqNo, acked: acked}
	s.mu.Unlock()
	if err := tx.Respond(res); err != nil {
		s.mu.Lock()
		if s.reinvite.acked == acked {
			s.reinvite.stop()
		}
		s.mu.Unlock()
		return err
	}
	g.goBackground(func() {
		interval := sip.T1
		timer := time.NewTimer(interval)
		defer timer.Stop()
		for {
			select {
			case <-acked:
				return
			case <-tx.Done():
				g.reinviteNotAcked(s, acked)
				return
			case <-g.ctx.Done():
				return
			case <-timer.C:
			}
			if tx.Respond(res) != nil {
				// The transaction ended (Timer L) as the timer fired, or its transport failed: no more
				// retransmissions, but the ACK still decides, until the transaction's end.
				select {
				case <-acked:
				case <-tx.Done():
					g.reinviteNotAcked(s, acked)
				case <-g.ctx.Done():
				}
				return
			}
			interval = min(2*interval, sip.T2)
			timer.Reset(interval)
		}
	})
	return nil
}

// reinviteNotAcked ends s when its re-INVITE's transaction ended (Timer L, 64·T1) and the 2xx registered with
// acked is still waiting for its ACK: the session SHOULD end then, with BYE (RFC 3261 §13.3.1.4), as one whose
// first INVITE's 2xx was not ACKed does. The peer never had the 2xx, or never acknowledged it: either way the
// gateway cannot know which media the peer uses now.
func (g *Gateway) reinviteNotAcked(s *Session, acked chan struct{}) {
	s.mu.Lock()
	pending := s.reinvite.acked == acked // not ACKed, superseded by a newer re-INVITE, or ended meanwhile
	if pending {
		s.reinvite.stop()
	}
	s.mu.Unlock()
	if pending {
		s.log.Info("re-INVITE answer not ACKed: ending the session", "call_id", s.callID)
		g.endSession(s, "reinvite_not_acked", outcomeSessionEnded, true)
	}
}

// errRebound cancels a rebind that a newer re-INVITE took over.
var errRebound = errors.New("peer path changed again")

// rebind binds a session whose first hop a re-INVITE changed (SPEC §3.2 step 6): the active side reconnects,
// we when we are it, else we wait for the peer's new connection; at most gateway.setup_timeout, as a setup.
// MESSAGEs queue meanwhile and go out once bound. A session that cannot rebind ends with BYE, its queued
// messages failing with the mapped code (480 for a connection that could not be made).
func (g *Gateway) rebind(s *Session) {
	ctx, cancel := context.WithCancelCause(g.ctx)
	defer cancel(nil)
	s.mu.Lock()
	if s.st != stateUp || !s.rebinding {
		s.mu.Unlock()
		return
	}
	if s.cancel != nil {
		s.cancel(errRebound) // the rebind of an earlier re-INVITE (applyPeerMedia cancels it first already)
	}
	s.cancel = cancel
	active := s.weActive
	s.mu.Unlock()
	timer := time.AfterFunc(g.cfg.Gateway.SetupTimeout, func() { cancel(errSetupTimeout) })
	defer timer.Stop()
	s.log.Info("peer path changed, rebinding", "active", active, "msrp_session_id", s.ms.ID())

	err := g.connectMSRP(ctx, s)
	s.mu.Lock()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errSetupTimeout) {
		// A newer rebind, the session's end or its replacement decides what happens to the queue.
		s.mu.Unlock()
		return
	}
	if err == nil {
		s.rebinding = false
		s.cancel = nil
		s.flushLocked()
		s.mu.Unlock()
		s.log.Info("MSRP side rebound", "msrp_session_id", s.ms.ID())
		return
	}
	s.mu.Unlock()
	s.log.Warn("MSRP side did not rebind after re-INVITE", "err", err, "active", active, "msrp_session_id", s.ms.ID())
	g.endSession(s, "msrp_failed", sendOutcome(0, err), true)
}

func (g *Gateway) onBye(req *sip.Request, tx sip.ServerTransaction) {
	// Checked first, so that a BYE refused takes no place in the recent-request memory either.
	if !g.dialogSource(g.inDialog(req), req) {
		g.refuse(req, tx, 403, "Forbidden", "source "+req.Source()+" is neither in sip.trusted nor the dialog's peer")
		return
	}
	if p := addressProblem(req, false); p != "" {
		g.refuse(req, tx, 400, "Bad Request", p)
		return
	}
	answered := make(chan struct{})
	if g.recent.begin(req, func(a answer) {
		g.respond(req, tx, a.code, a.reason, a.warning, a.hdrs...)
		close(answered)
	}) {
		<-answered // a retransmission of a BYE answered already (its transaction is gone, see below)
		return
	}
	s := g.inDialog(req)
	if s == nil {
		g.recent.finish(req, answer{code: 481, reason: "Call/Transaction Does Not Exist"})
		g.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	if a, bad := badExtension(req); bad {
		g.recent.finish(req, a)
		g.refuse(req, tx, a.code, a.reason, a.warning, a.hdrs...)
		return
	}
	cseq := req.CSeq().SeqNo
	s.mu.Lock()
	if last, ok := s.takeRemoteCSeqLocked(cseq); !ok {
		// Out of order (RFC 3261 §12.2.2): 500, and the session stays. Remembered, so a retransmission gets the
		// same; a retransmission of a BYE taken (the same CSeq) gets its 200 from g.recent, above.
		s.mu.Unlock()
		a := answer{code: 500, reason: "Server Internal Error", warning: outOfOrder("BYE", cseq, last)}
		g.recent.finish(req, a)
		g.refuse(req, tx, a.code, a.reason, a.warning)
		return
	}
	uas, uac := s.uas, s.uac
	s.byeSent = true // the peer ended the dialog: no BYE from us
	s.peerBye = true // and new MESSAGEs go to a new session (retired)
	s.mu.Unlock()
	err := errDialogConfirmed // the session is up: sipgo's dialog is gone (confirmedDialog), the 200 is ours
	switch {
	case uas != nil:
		err = uas.ReadBye(req, tx)
	case uac != nil:
		err = uac.ReadBye(req, tx)
	}
	if err != nil {
		g.respond(req, tx, 200, "OK", "")
	}
	g.recent.finish(req, answer{code: 200, reason: "OK"})
	s.log.Info("BYE from the session-mode side", "call_id", s.callID)
	if !g.draining.Load() { // draining, what the session holds fails at once, with 503 (SPEC §3.3)
		s.awaitAnswers(byeGrace)
	}
	g.endSession(s, "bye", outcomeSessionEnded, false)
	// Over UDP sipgo would keep the transaction for Timer J (32 s) only to answer retransmissions: with
	// 100,000 sessions ending at once, hundreds of MiB. g.recent answers them instead.
	tx.Terminate()
}

// outOfOrder is the Warning of a 500 to a request in the dialog whose CSeq number came after last.
func outOfOrder(what string, cseq, last uint32) string {
	return what + " out of order: CSeq " + strconv.FormatUint(uint64(cseq), 10) + " after " + strconv.FormatUint(uint64(last), 10)
}

// byeGrace is how long a BYE from the peer waits for the answers to SENDs still unanswered before the session
// ends and fails them: the peer may have answered them just before its BYE, on the MSRP connection, and the
// BYE overtaken them on the way (another transport, another goroutine here). A delivered message reported as
// failed makes its sender send it again. A newer INVITE replacing the session waits as long (replace): a
// delivered message moved to the new session would be delivered twice.
const byeGrace = 250 * time.Millisecond

// awaitAnswers waits until s has no SEND unanswered and no message a relay took still waiting for its REPORT
// (behind a relay the REPORT is the answer that decides, SPEC §5, and it comes a hop later than the relay's
// 200), or d has passed, or s is ending. Polled: a BYE is rare next to the messages, and waits at all only
// when messages are in flight.
func (s *Session) awaitAnswers(d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		s.mu.Lock()
		done := (len(s.unacked) == 0 && len(s.awaiting) == 0) || s.st >= stateEnding
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// recordedTx is the server transaction of an INVITE starting a dialog: the final response sent through it is
// kept for repeats of the INVITE (recent.go).
type recordedTx struct {
	sip.ServerTransaction
	recent   *recentRequests
	req      *sip.Request
	answered bool
}

// Respond is called on the INVITE's handler goroutine only (onInvite, and sipgo's dialog it calls).
func (t *recordedTx) Respond(res *sip.Response) error {
	if res.StatusCode >= 200 && !t.answered {
		t.answered = true
		// Kept as it is, not copied: a dialog's 200 is the one its sipgo dialog keeps for the session's life,
		// so the memory of 32 s of setups costs nothing more (a copy was ~3 KB per INVITE, 100,000 sessions
		// set up at once took 150 MiB more RSS). Nothing writes a response once it is sent; a repeat works on
		// a copy (repeatResponse).
		t.recent.finish(t.req, answer{code: res.StatusCode, reason: res.Reason, res: res})
	}
	return t.ServerTransaction.Respond(res)
}

// settle runs when the INVITE's handler returns. Every final response went through Respond, but the 487
// sipgo's transaction sends itself when a CANCEL ends the INVITE first: that one is recorded here, so that
// repeats waiting for an answer get it, and the entry can expire.
func (t *recordedTx) settle() {
	if !t.answered {
		t.recent.finish(t.req, answer{code: 487, reason: "Request Terminated", res: sip.NewResponseFromRequest(t.req, 487, "Request Terminated", nil)})
	}
}

// repeatResponse is res, the final response to an earlier request, as the answer to req, which repeats it:
// with req's Via headers (its branch, its received and rport), all else as res was (To-tag, SDP).
func repeatResponse(req *sip.Request, res *sip.Response) *sip.Response {
	r := res.Clone()
	for r.RemoveHeader("Via") {
	}
	fresh := sip.NewResponseFromRequest(req, res.StatusCode, res.Reason, nil)
	// Where the repeat came from, not where the first did (the clone keeps that): RFC 3261 §18.2.2.
	r.SetDestination(fresh.Destination())
	r.SetTransport(fresh.Transport())
	vias := fresh.GetHeaders("Via")
	for i := len(vias) - 1; i >= 0; i-- {
		r.PrependHeader(vias[i]) // the top one last: it is the one Via() returns
	}
	return r
}

// inDialog finds the session of an in-dialog request by its dialog: Call-ID, our tag (the To tag) and the
// peer's (the From tag).
func (g *Gateway) inDialog(req *sip.Request) *Session {
	tag := toTag(req)
	if tag == "" {
		return nil
	}
	v, ok := g.dialogs.Load(dialogKey(callID(req), tag))
	if !ok {
		return nil
	}
	if s := v.(*Session); s.remoteTag == fromTag(req) {
		return s
	}
	return nil // our tag, but another dialog's remote tag (another fork's, a stale one)
}

package gateway

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file is what happens to a SEND from the session-mode side (SPEC §3.2 step 4, §4, §5 "MSRP → MESSAGE"):
// answered at once as its Failure-Report allows, turned into a MESSAGE for the page-mode user, and the
// MESSAGE's final response reported back as the SEND asked.

// msrpHandler connects one MSRP session to its gateway session.
type msrpHandler struct{ s *Session }

// HandleMessage gets each complete incoming message; the returned code answers the SEND.
func (h *msrpHandler) HandleMessage(ms *msrp.Session, in *msrp.Incoming) int {
	// The peer may SEND as soon as it has our 200, before its ACK reaches us: the first message of its RCS
	// INVITE still comes first (SPEC §3.2 step 7).
	h.s.gw.deliverFirst(h.s)
	return h.handle(ms, in)
}

// handle is HandleMessage, for a message the session's first ones were delivered before.
func (h *msrpHandler) handle(ms *msrp.Session, in *msrp.Incoming) int {
	s := h.s
	g := s.gw
	s.touchSend()
	if s.ending() {
		// The MSRP session still routes to s while it ends (a drain flushing REPORTs, a BYE's end under way).
		s.log.Info("SEND refused: session ending", "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.RequestRefused, Key: s.key, Direction: event.ToSIP, Code: 481, Reason: "session ending", MSRPSessionID: ms.ID()})
		return 481
	}
	if !sdp.Match(s.route.AcceptTypes, in.ContentType) {
		s.log.Info("SEND refused: content type not offered", "content_type", in.ContentType, "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 415, Reason: "content type not offered", MSRPSessionID: ms.ID()})
		return 415
	}
	job := &sipJob{s: s, in: in, contentType: in.ContentType, body: in.Body, arrived: time.Now()}
	if mediaType(in.ContentType) == ctypeCPIM && !g.cfg.Gateway.CPIMPassthrough {
		m, err := cpim.Parse(in.Body)
		if err != nil {
			s.log.Info("SEND refused: bad CPIM", "err", err, "msrp_session_id", ms.ID(), "call_id", s.callID)
			g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 400, Reason: "bad CPIM", MSRPSessionID: ms.ID()})
			return 400
		}
		if names := m.Unsupported(); len(names) > 0 {
			// Unwrapping makes the gateway the CPIM endpoint, which must not deliver as if it understood
			// what the sender requires it to (RFC 3862 §4.7).
			s.log.Info("SEND refused: CPIM Require names headers the gateway does not implement", "require", names, "msrp_session_id", ms.ID(), "call_id", s.callID)
			g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 415, Reason: "CPIM Require not supported", MSRPSessionID: ms.ID()})
			return 415
		}
		inner := m.EntityType()
		if !sdp.Match(s.route.AcceptWrappedTypes, inner) && !sdp.Match(s.route.AcceptTypes, inner) {
			s.log.Info("SEND refused: wrapped content type not offered", "content_type", inner, "msrp_session_id", ms.ID(), "call_id", s.callID)
			g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 415, Reason: "wrapped content type not offered", MSRPSessionID: ms.ID()})
			return 415
		}
		// The page-mode user gets the bare content with only its Content-Type: a Content-Transfer-Encoding
		// (RFC 3862 §2 allows MIME headers on the encapsulated entity) is undone here, or the phone would show
		// e.g. base64 text labelled text/plain. SIP MESSAGE bodies are binary-safe (RFC 3428).
		body, err := m.DecodedBody()
		switch {
		case errors.Is(err, cpim.ErrUnknownEncoding):
			s.log.Info("SEND refused: unknown Content-Transfer-Encoding in CPIM", "encoding", m.TransferEncoding(), "content_type", inner, "msrp_session_id", ms.ID(), "call_id", s.callID)
			g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 415, Reason: "unknown Content-Transfer-Encoding", MSRPSessionID: ms.ID()})
			return 415
		case err != nil:
			s.log.Info("SEND refused: bad CPIM", "err", err, "msrp_session_id", ms.ID(), "call_id", s.callID)
			g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 400, Reason: "bad CPIM", MSRPSessionID: ms.ID()})
			return 400
		}
		job.cpim, job.contentType, job.body = m, inner, body
	}
	var hdrs []cpim.Header
	if job.cpim != nil {
		hdrs = job.cpim.ContentHeaders
	} else {
		for _, hd := range in.Headers {
			hdrs = append(hdrs, cpim.Header{Name: hd.Name, Value: hd.Value})
		}
	}
	control := cpim.IsControl(job.contentType, hdrs)
	if job.cpim == nil && mediaType(in.ContentType) == ctypeCPIM {
		// Passed through (cpim_passthrough): what it wraps decides. Unparsable CPIM is the page-mode side's
		// to judge, as all passed-through CPIM is.
		if m, err := cpim.Parse(in.Body); err == nil {
			control = m.IsControl()
		}
	}
	var ours, theirs sdp.Media // our direction, and the peer's
	s.mu.Lock()
	if s.local != nil {
		ours.Direction = s.local.Direction
	}
	if s.peer != nil {
		theirs.Direction = s.peer.Direction
	}
	s.mu.Unlock()
	if !control && (!ours.Receives() || !theirs.Sends()) {
		// Our answer said sendonly or inactive (to a recvonly or inactive offer), or the peer's answer to our
		// offer said recvonly or inactive (RFC 3264 §6.1: we only send, or nothing is sent): RFC 4975 §8.9
		// refuses its regular messages with 403, control payloads go on.
		s.log.Info("SEND refused: the session does not carry messages this way", "direction", ours.Direction, "peer_direction", theirs.Direction, "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 403, Reason: "session not receiving", MSRPSessionID: ms.ID()})
		return 403
	}
	if len(job.body) == 0 || (control && !g.cfg.Gateway.ForwardControl) {
		// Control payloads never reach a page-mode user as chat text (SPEC §4).
		g.publish(event.Event{Kind: event.MessageDropped, Key: s.key, Direction: event.ToSIP, Reason: "control payload " + mediaType(job.contentType), MSRPSessionID: ms.ID()})
		if in.SuccessReport {
			// Consumed here, it was received whole all the same: RFC 4975 §7.1.3 wants its success REPORT,
			// which the msrp stack holds until this SEND's response is out.
			if err := s.sendControl(controlMsg{in: in, status: 200, comment: "OK"}); err != nil && !errors.Is(err, msrp.ErrClosed) {
				s.log.Debug("REPORT not sent", "err", err, "message_id", in.MessageID)
			}
		}
		return 200
	}
	if int64(len(job.body)) > g.cfg.Gateway.MaxMessageSize {
		s.log.Info("SEND refused: message too large", "size", len(job.body), "limit", g.cfg.Gateway.MaxMessageSize, "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.MessageFailed, Key: s.key, Direction: event.ToSIP, Code: 413, Reason: "message too large", MSRPSessionID: ms.ID()})
		return 413
	}
	if max := g.cfg.Limits.MaxQueuedTotal; max > 0 && g.out.pending() >= max {
		// MSRP has no "busy": 403 (action not allowed) refuses this message and tells the sender at once.
		s.log.Warn("SEND refused: limits.max_queued_total reached for MESSAGEs to the page-mode side", "limit", max, "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.RequestRefused, Key: s.key, Direction: event.ToSIP, Code: 403, Reason: "limits.max_queued_total reached", MSRPSessionID: ms.ID()})
		return 403
	}
	if max := g.cfg.Limits.MaxQueuedPerSession; max > 0 && s.toSIPOpen.Add(1) > int64(max) {
		// One session whose page-mode user does not answer (each MESSAGE waits up to Timer F) must not take
		// max_queued_total from all the others (SPEC §8).
		s.toSIPOpen.Add(-1)
		s.log.Warn("SEND refused: limits.max_queued_per_session reached for MESSAGEs to the page-mode side", "limit", max, "msrp_session_id", ms.ID(), "call_id", s.callID)
		g.publish(event.Event{Kind: event.RequestRefused, Key: s.key, Direction: event.ToSIP, Code: 403, Reason: "limits.max_queued_per_session reached", MSRPSessionID: ms.ID()})
		return 403
	} else if max <= 0 {
		s.toSIPOpen.Add(1)
	}
	s.mu.Lock()
	job.coords = s.coords
	if s.taken.has(in.MessageID) {
		s.mu.Unlock()
		s.toSIPOpen.Add(-1)
		// RFC 4975 §5.4: a sender resends a message whose delivery it did not see confirmed with the same
		// Message-ID, and the receiver treats it as a duplicate. The first one's outcome is (or will be)
		// reported as usual; the page-mode user does not get it twice.
		s.log.Info("SEND not delivered again: a message with its Message-ID was taken already", "message_id", in.MessageID, "msrp_session_id", ms.ID(), "call_id", s.sipCallID())
		g.publish(event.Event{Kind: event.MessageDropped, Key: s.key, Direction: event.ToSIP, Reason: "duplicate Message-ID", MSRPSessionID: ms.ID()})
		return 200
	}
	s.mu.Unlock()
	if g.out.enqueue(job) != nil {
		s.toSIPOpen.Add(-1)
		// The drain is over (Shutdown ends every session now): refused at once, nothing left to report later.
		g.publish(event.Event{Kind: event.RequestRefused, Key: s.key, Direction: event.ToSIP, Code: 481, Reason: "draining: session ending", MSRPSessionID: ms.ID()})
		return 481
	}
	s.mu.Lock()
	if s.taken == nil {
		s.taken = new(recentIDs)
	}
	s.taken.add(in.MessageID)
	s.mu.Unlock()
	s.toSIP.Add(1)
	return 200
}

// maxRecentIDs is how many of a session's last Message-IDs from the peer are remembered to recognise a
// resent message: those sent while a connection failed, which the peer has not seen answered.
const maxRecentIDs = 32

// recentIDs holds the last maxRecentIDs Message-IDs taken from a session's peer; under the session's lock.
type recentIDs struct {
	ids  [maxRecentIDs]string
	next int
}

// has says whether id was taken lately; false for a nil r (nothing taken yet) and for "".
func (r *recentIDs) has(id string) bool {
	return r != nil && id != "" && slices.Contains(r.ids[:], id)
}

func (r *recentIDs) add(id string) {
	r.ids[r.next] = id
	r.next = (r.next + 1) % len(r.ids)
}

// HandleKeepAlive counts a bodiless SEND (a binding or a keep-alive) as a SEND for session_timeout: the peer
// is there (SPEC §3.3).
func (h *msrpHandler) HandleKeepAlive(*msrp.Session) { h.s.touchSend() }

// HandleReport gets REPORTs for our SENDs. A failure REPORT for a message whose SEND is unanswered has already
// ended its Send in the MSRP stack, with the REPORT's status as its outcome (SPEC §5: 481 → 480, 408 → 408).
// A message sent through a relay is settled by its REPORTs (message.go, reported): success → delivered, failure
// → the mapped code, also after the relay's 200. A message the peer endpoint itself answered 200 is settled, so
// what remains is logged.
func (h *msrpHandler) HandleReport(ms *msrp.Session, r *msrp.Report) {
	s := h.s
	if pm, o := s.reported(r); pm != nil {
		s.log.Debug("REPORT settles a relayed message", "message_id", r.MessageID, "status", r.StatusCode, "comment", r.Comment, "msrp_session_id", ms.ID())
		gone := s.retireGone(r.StatusCode)
		pm.finish(s.gw, s, o, false)
		if gone {
			s.peerSessionGone()
		}
		return
	}
	if r.StatusCode != 200 {
		s.log.Info("failure REPORT received", "message_id", r.MessageID, "status", r.StatusCode, "comment", r.Comment, "key", s.key, "msrp_session_id", ms.ID(), "call_id", s.sipCallID())
		return
	}
	s.log.Debug("REPORT received", "message_id", r.MessageID, "status", r.StatusCode, "msrp_session_id", ms.ID())
}

// HandleClose ends the gateway session when its MSRP connection is lost (SPEC §3.3).
func (h *msrpHandler) HandleClose(ms *msrp.Session, err error) {
	s := h.s
	if err == nil || errors.Is(err, msrp.ErrClosed) || s.ending() {
		return
	}
	s.mu.Lock()
	setup := s.origin == originMessage && s.st == stateSettingUp
	if setup {
		// The stack tells of one loss only: the session must not come up on a later binding (markUp).
		s.lostInSetup = true
	}
	s.mu.Unlock()
	if setup {
		// Lost before the session came up: its setup finds it unbound (Connect's first SEND fails, or markUp
		// refuses it) and fails, raising setup-failed for the messages it queued (SPEC §3.1 step 6). Ended
		// here, it would end as an established session's loss: no setup-failed, a notification each.
		s.log.Info("MSRP connection lost during setup", "err", err, "msrp_session_id", ms.ID(), "call_id", s.callID)
		return
	}
	reason := "msrp_lost"
	if errors.Is(err, msrp.ErrPeerNotReading) {
		reason = "msrp_stalled" // the stack closed it: the peer kept it open but read nothing
	}
	s.log.Warn("MSRP connection lost", "err", err, "msrp_session_id", ms.ID(), "call_id", s.callID)
	s.gw.goBackground(func() { s.gw.endSession(s, reason, outcomeMSRPConnFailed, true) })
}

// delivered is called with the page-mode side's final response to the MESSAGE a SEND became.
func (j *sipJob) reportBack(g *Gateway, o outcome) {
	s, in := j.s, j.in
	e := event.Event{Kind: event.MessageDelivered, Key: s.key, Direction: event.ToSIP, Code: o.Code, Reason: o.Reason, CallID: s.sipCallID(), MSRPSessionID: s.msrpID(), Time: time.Now()}
	if o.delivered() {
		e.Duration = time.Since(j.arrived)
	} else {
		e.Kind = event.MessageFailed
		s.log.Info("message to SIP failed", "code", o.Code, "reason", o.Reason, "message_id", in.MessageID, "msrp_session_id", e.MSRPSessionID, "call_id", e.CallID)
	}
	g.publish(e)
	g.imdnFor(j, o)
	status, comment := reportStatus(o)
	if o.delivered() && !in.SuccessReport {
		return
	}
	if err := s.sendControl(controlMsg{in: in, status: status, comment: comment}); err != nil && !errors.Is(err, msrp.ErrClosed) {
		s.log.Debug("REPORT not sent", "err", err, "message_id", in.MessageID)
	}
}

// excerpt is the first 60 characters of a message, for notification bodies.
func excerpt(body []byte) string {
	s := strings.ToValidUTF8(string(body), "?")
	r := []rune(s)
	if len(r) > 60 {
		return string(r[:60])
	}
	return s
}

// deliverInvitePart delivers the first message an RCS INVITE carries next to its SDP (SPEC §3.2 step 7) like
// any SEND. It has no MSRP transaction, so nothing is reported back on the MSRP side.
func (g *Gateway) deliverInvitePart(s *Session, p sdp.Part) {
	if mediaType(p.ContentType) == "application/sdp" {
		return
	}
	in := &msrp.Incoming{MessageID: msrp.NewTransactionID(), ContentType: p.ContentType, Body: p.Body, FailureReport: "no"}
	if code := (&msrpHandler{s: s}).handle(s.ms, in); code != 200 {
		s.log.Info("first message of the INVITE not delivered", "code", code, "content_type", p.ContentType)
	}
}

// deliverFirst delivers the parts next to the SDP of s's RCS INVITE, once: when its ACK comes, or before the
// first SEND of the session if that comes first. A SEND arriving meanwhile waits until they are queued.
func (g *Gateway) deliverFirst(s *Session) {
	if s.firstDone.Load() {
		return // the usual case, on every SEND
	}
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	parts := s.firstParts
	s.firstParts = nil
	for _, p := range parts {
		g.deliverInvitePart(s, p)
	}
	s.firstDone.Store(true)
}

// imdnFor sends the IMDN the sender of an unwrapped CPIM message asked for (SPEC §5): having unwrapped the
// CPIM the gateway is its endpoint on the page-mode user's behalf. `delivered` only on a 200 (a 202 proves
// nothing), `failed` on a failure; never for CPIM passed through unchanged.
func (g *Gateway) imdnFor(j *sipJob, o outcome) {
	if j.cpim == nil || g.cfg.Gateway.CPIMPassthrough {
		return
	}
	var status string
	switch {
	case o.Code == 200 && g.cfg.Gateway.IMDN.DeliveredOn200 && j.cpim.Wants("positive-delivery"):
		status = "delivered"
	case !o.delivered() && j.cpim.Wants("negative-delivery"):
		status = "failed"
	default:
		return
	}
	n, err := cpim.NewDeliveryIMDN(j.cpim, status, time.Now())
	if err != nil {
		j.s.log.Info("IMDN not sent", "err", err)
		return
	}
	s := j.s
	out := &msrp.Outgoing{ContentType: ctypeCPIM, Body: n.Marshal(), FailureReport: "no"}
	if err := s.sendControl(controlMsg{out: out}); err != nil {
		s.log.Info("IMDN not sent", "err", err, "msrp_session_id", s.ms.ID())
		return
	}
	s.log.Debug("IMDN sent", "status", status, "imdn_message_id", j.cpim.IMDNMessageID())
}

// errPeerRefusesIMDN is sendControlLocked's: the peer's SDP does not list the types an IMDN travels as.
var errPeerRefusesIMDN = errors.New("the peer's accept-types do not take message/imdn+xml in message/cpim")

// peerTakesIMDN reports whether the peer listed what an IMDN is: message/cpim (RFC 5438 §7.2.1) around
// message/imdn+xml, the latter in accept-wrapped-types or accept-types. RFC 4975 §8.6 forbids sending it
// anything else, however much its CPIM asked for a notification.
func peerTakesIMDN(p *sdp.Media) bool {
	return sdp.Match(p.AcceptTypes, ctypeCPIM) &&
		(sdp.Match(p.AcceptWrappedTypes, cpim.IMDNType) || sdp.Match(p.AcceptTypes, cpim.IMDNType))
}

// controlMsg is a message of the gateway's own: an IMDN (out), or the REPORT on in, the incoming message it
// reports, with its status.
type controlMsg struct {
	out     *msrp.Outgoing
	in      *msrp.Incoming
	status  int
	comment string
}

// sendControl sends a message of the gateway's own (an IMDN or a REPORT) on the session. Until the session is
// up, and while it rebinds after a re-INVITE, it waits in s.control, sent by markUp or the rebind in the order
// made: the first message of an RCS INVITE is delivered while the MSRP connection is still being made (SPEC
// §3.2 step 7), a page-mode answer can come while the session follows a new peer path (§3.2 step 6), and
// neither its IMDN nor its REPORT must be lost to msrp.ErrNotBound.
//
// Once a newer INVITE replaced the session, an IMDN goes to the session that replaced it, as those waiting
// here at the replacement do (end.go): it is end to end (RFC 5438), and the page-mode answer to a SEND of the
// old session can come up to Timer F later. A REPORT does not: it is this MSRP session's (end.go, replace).
func (s *Session) sendControl(c controlMsg) error {
	s.mu.Lock()
	switch {
	case s.st == stateSettingUp || (s.st == stateUp && s.rebinding):
		s.control = append(s.control, c)
		s.mu.Unlock()
		return nil
	case s.st == stateUp:
		err := s.sendControlLocked(c, false)
		s.mu.Unlock()
		return err
	}
	heir := s.heir
	s.mu.Unlock()
	if heir == nil || c.in != nil {
		return msrp.ErrClosed
	}
	return heir.sendControl(c)
}

// sendControlLocked sends c on the bound MSRP session. A REPORT goes to the peer's current path: reports follow
// the session (RFC 4975), and a re-INVITE may have moved it since the SEND came, whether the REPORT waited for
// the rebind (queued) or was made after it. On the SEND's own path it keeps the SEND itself, so that a REPORT
// made while the SEND is handled still follows its response (msrp.Session.Report).
func (s *Session) sendControlLocked(c controlMsg, queued bool) error {
	if c.in == nil {
		if s.peer != nil && !peerTakesIMDN(s.peer) {
			return errPeerRefusesIMDN // each caller logs it, as the next one
		}
		if err := s.checkPeerMaxSize(len(c.out.Body), "IMDN"); err != nil {
			return err // each caller logs it: an IMDN is the gateway's own, nobody else to tell
		}
		return s.ms.Send(c.out, nil)
	}
	in := c.in
	if p := s.ms.PeerPath(); len(p) > 0 && (queued || !msrp.PathEqual(p, in.FromPath)) {
		cp := *in
		cp.FromPath = p
		in = &cp
	}
	return s.ms.Report(in, c.status, c.comment)
}

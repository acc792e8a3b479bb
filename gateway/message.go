package gateway

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/cpim"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/sipsyntax"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// This file is what happens to a page-mode MESSAGE (SPEC §3.1, §5 "MESSAGE → MSRP"): it is checked, routed to
// its gateway session (created on first use), queued until the session is up, sent as a SEND, and answered
// as gateway.message.reply says.

const (
	ctypeIsComposing = "application/im-iscomposing+xml"
	ctypeCPIM        = "message/cpim"
)

// pageMessage is one MESSAGE on its way to the MSRP side.
type pageMessage struct {
	req         *sip.Request
	contentType string
	body        []byte
	arrived     time.Time
	key         string

	r        responder                  // where the final response goes
	released func()                     // runs once the final response is out
	done     atomic.Bool                // the outcome is known (exactly once)
	replied  atomic.Int32               // replyWaiting, replyAnswered (answered before the outcome), replyResolved
	wait     atomic.Pointer[time.Timer] // wait mode: answers 202 once reply_wait passed without an outcome
	deadline *time.Timer                // bounds the wait for the SEND's result, then its REPORT (deadline.go); set before the SEND

	// Of its SEND, guarded by the mutex of the session sending it.
	msgID     string    // Message-ID; a newer session sending it again keeps it (RFC 4975 §5.4)
	wrappedAt time.Time // DateTime of its CPIM wrapping, and
	imdnID    string    // its imdn.Message-ID, if any: sent again, it stays the same IM (RFC 5438 §6.3)
	relayed   bool      // sent through a relay (the peer's a=path has more than one URI): only a REPORT tells delivery
	size      int64     // body octets, CPIM included: what success REPORTs must cover
	confirmed int64     // octets 1..confirmed covered by success REPORTs so far
}

const (
	replyWaiting int32 = iota
	replyAnswered
	replyResolved
)

// onMessage is sipgo's handler for MESSAGE. A MESSAGE the gateway can take was taken already, in arrival
// order, from the transport (udpintake.go), and sipgo drops its transaction as this returns. One it could not
// take (takeable) is malformed in a way sipgo lets through, e.g. without Call-ID: 400 (SPEC §8), so that its
// sender does not retransmit it until Timer F.
func (g *Gateway) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	if why := untakeable(req); why != "" {
		g.refuse(req, tx, 400, "Bad Request", why)
	}
}

// takeMessage handles one MESSAGE without waiting for its outcome; its caller is a transport reader, taking
// MESSAGEs in the order they arrived (udpintake.go). The final response goes out through r, now or once the
// outcome is known (wait mode). A repeat or retransmission is answered like the first; any other MESSAGE
// holds one of limits.max_sip_handlers slots until it is answered.
func (g *Gateway) takeMessage(req *sip.Request, r responder) {
	if !g.checkTrusted(req, r) {
		return
	}
	repeat := g.recent.begin(req, func(a answer) {
		g.respond(req, r, a.code, a.reason, a.warning, a.hdrs...)
	})
	if repeat {
		return // answered as the first was, once the first is answered
	}
	if !g.takeHandler() {
		g.overloaded(req)
		g.answerMessage(req, r, answer{code: 503, reason: "Service Unavailable", hdrs: []sip.Header{g.retryAfter()}}, func() {})
		return
	}
	if a, pending := g.handleMessage(req, r, g.releaseHandler); !pending {
		g.answerMessage(req, r, a, g.releaseHandler)
	}
}

// answerMessage sends a MESSAGE's final response, remembers it for repeats and retransmissions, and
// releases the request.
func (g *Gateway) answerMessage(req *sip.Request, r responder, a answer, released func()) {
	g.recent.finish(req, a)
	if a.warning != "" {
		g.refuse(req, r, a.code, a.reason, a.warning, a.hdrs...)
	} else {
		g.respond(req, r, a.code, a.reason, "", a.hdrs...)
	}
	released()
}

// handleMessage checks, routes and queues the MESSAGE. It returns the final answer, or pending when the
// answer comes later (wait mode: from the outcome or the reply_wait timer), which then runs released.
func (g *Gateway) handleMessage(req *sip.Request, r responder, released func()) (a answer, pending bool) {
	if p := addressProblem(req, true); p != "" {
		return answer{code: 400, reason: "Bad Request", warning: p}, false
	}
	if p := messageURIProblem(req, false); p != "" {
		return answer{code: 400, reason: "Bad Request", warning: p}, false
	}
	if a, bad := g.messageHeaderProblem(req); bad {
		return a, false
	}
	if a, bad := badExtension(req); bad {
		return a, false
	}
	ct := req.ContentType()
	if ct == nil || strings.TrimSpace(ct.Value()) == "" {
		return answer{code: 400, reason: "Bad Request", warning: "MESSAGE without Content-Type"}, false
	}
	if !isMediaType(ct.Value()) {
		return answer{code: 400, reason: "Bad Request", warning: "Content-Type " + clip(ct.Value(), maxQuoted) + " is not a media type (type/subtype)"}, false
	}
	if a, bad := badContentEncoding(req); bad {
		return a, false
	}
	body := req.Body()
	if len(body) == 0 {
		return answer{code: 400, reason: "Bad Request", warning: "MESSAGE with an empty body"}, false
	}
	if max := g.cfg.Gateway.MaxMessageSize; int64(len(body)) > max {
		return answer{code: 413, reason: "Request Entity Too Large", warning: "message body of " + itoa(len(body)) + " bytes exceeds gateway.max_message_size " + itoa(int(max))}, false
	}
	rt, err := g.routeBy(g.router.RouteMessage, req)
	if err != nil {
		return refusalOf(err), false
	}
	if why := g.missingNotifyHeader(req); why != "" {
		return answer{code: 400, reason: "Bad Request", warning: why}, false
	}
	ctype := msrpMediaType(ct.Value())
	pm := &pageMessage{
		req: req, contentType: ctype, body: body, arrived: time.Now(), key: rt.Key,
		r: r, released: released,
	}
	if g.cfg.Gateway.Message.Reply != config.ReplyWait {
		// accept / ok: the answer does not depend on the outcome; a later failure becomes a notification.
		pm.replied.Store(replyAnswered)
	}

	composing := pm.composing()
	var s *Session
	for attempt := 0; ; attempt++ {
		// A MESSAGE for a live session, the usual case, takes a plain lookup; only when there is none, or the
		// first one found was retired meanwhile, does the table create one under its lock. One retired already
		// counts as none, as GetOrCreate counts it: the attempt that finds it must not be spent on it.
		if attempt == 0 {
			if s = g.table.Get(rt.Key); s != nil && s.retired() {
				s = nil
			}
		}
		if s == nil || attempt > 0 {
			var created bool
			var a answer
			if s, created, a = g.sessionForMessage(req, pm, rt, composing); s == nil {
				return a, false
			}
			if created {
				// The MESSAGE is queued already, and the setup starts only now: a setup failing at once must find
				// it there (one setup-failed, covering it), not leave it to make a second session.
				g.log.Info("session created", "key", rt.Key, "origin", originMessage, "call_id", callID(req))
				ns := s
				if !g.goBackground(func() { g.setupFromMessage(ns, req) }) {
					g.endSession(ns, "closed", outcomeDraining, false) // the gateway is closing: answered 503
				}
				break
			}
		}
		o, accepted, bound := s.submit(pm)
		if bound != nil {
			return answer{code: 503, reason: "Service Unavailable", warning: "message refused: " + bound.Error(), hdrs: []sip.Header{g.retryAfter()}}, false
		} else if accepted {
			break
		} else if attempt > 0 || o.Code != outcomeSessionEnded.Code {
			s.logRefused(req, ctype, o)
			return answer{code: o.Code, reason: o.Reason, hdrs: acceptHeader(o, s)}, false
		}
		// The session ended between lookup and submit: the next attempt makes a new one.
	}
	s.touchMessage()
	s.toMSRP.Add(1)
	if g.cfg.Gateway.Message.Reply != config.ReplyWait {
		return g.acceptedAnswer(), false
	}
	pm.waitReply(g)
	return answer{}, true
}

// messageHeaderProblem checks what RFC 3261 asks of any request a UAS takes, for a MESSAGE: a CSeq naming
// another method is malformed (§8.1.1.5: 400); Max-Forwards 0 forbids forwarding, which is what the gateway
// does with a MESSAGE (§16.3: 483); a To tag puts it in a dialog (RFC 3428 §4), which must be one of the
// gateway's (§12.2.2: 481), and even then it is not chat the gateway carries: an MSRP session's messages go
// over MSRP, and a page-mode MESSAGE has no dialog (403).
func (g *Gateway) messageHeaderProblem(req *sip.Request) (answer, bool) {
	if cseq := req.CSeq(); cseq != nil && cseq.MethodName != sip.MESSAGE {
		return answer{code: 400, reason: "Bad Request", warning: "CSeq method " + clip(string(cseq.MethodName), maxQuoted) + " is not the request's MESSAGE"}, true
	}
	if mf := req.MaxForwards(); mf != nil && mf.Val() == 0 {
		return answer{code: 483, reason: "Too Many Hops", warning: "Max-Forwards is 0: the MESSAGE may not be forwarded"}, true
	}
	if toTag(req) != "" {
		if g.inDialog(req) != nil {
			return answer{code: 403, reason: "Forbidden", warning: "MESSAGE inside the INVITE dialog of an MSRP session: its messages go over MSRP"}, true
		}
		return answer{code: 481, reason: "Call/Transaction Does Not Exist", warning: "MESSAGE with a To tag, for a dialog the gateway does not have"}, true
	}
	return answer{}, false
}

// isMediaType reports whether a Content-Type value starts with type "/" subtype, both tokens (RFC 3261 §20.15,
// §25.1); parameters are the peer's to read.
func isMediaType(v string) bool {
	v, _, _ = strings.Cut(v, ";")
	typ, sub, ok := strings.Cut(strings.TrimSpace(v), "/")
	return ok && sipsyntax.IsToken(strings.TrimSpace(typ)) && sipsyntax.IsToken(strings.TrimSpace(sub))
}

// badContentEncoding is the answer to a MESSAGE whose body carries a Content-Encoding (compact form "e") other
// than identity: the gateway carries bodies as they are, and MSRP has no Content-Encoding to pass one on in, so
// the peer would get the encoded octets as the message. 415 with Accept-Encoding naming what it takes (RFC 3261
// §8.2.3).
func badContentEncoding(req *sip.Request) (answer, bool) {
	var bad []string
	for _, h := range req.Headers() { // one pass, without allocating: this runs on every MESSAGE
		if name := h.Name(); !strings.EqualFold(name, "Content-Encoding") && !strings.EqualFold(name, "e") {
			continue
		}
		for _, c := range strings.Split(h.Value(), ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				bad = append(bad, c)
			}
		}
	}
	if len(bad) == 0 {
		return answer{}, false
	}
	return answer{code: 415, reason: "Unsupported Media Type", warning: "unsupported Content-Encoding " + clip(strings.Join(bad, ", "), maxQuoted) + ": only identity is carried",
		hdrs: []sip.Header{sip.NewHeader("Accept-Encoding", "identity")}}, true
}

// acceptedAnswer is the answer to a MESSAGE taken without waiting for its outcome (reply modes accept and ok,
// or nothing to deliver it to): 200 in mode ok, as the reference answers every MESSAGE, else 202.
func (g *Gateway) acceptedAnswer() answer {
	if g.cfg.Gateway.Message.Reply == config.ReplyOK {
		return answer{code: 200, reason: "OK"}
	}
	return answer{code: 202, reason: "Accepted"}
}

// sessionForMessage returns the live session for a MESSAGE's key, or installs a new one holding pm; created
// says which. When neither, s is nil and a is the MESSAGE's answer.
func (g *Gateway) sessionForMessage(req *sip.Request, pm *pageMessage, rt Route, composing bool) (s *Session, created bool, a answer) {
	var bound error    // a session bound (limits.go) refused the new session
	var msgBound error // a queue bound refused the MESSAGE that would have created it
	var badURI string  // the INVITE could not be made from this MESSAGE (buildInvite)
	var idle bool      // an isComposing found no live session
	var refusedBy *Session
	var refusal outcome // why refusedBy, the session never installed, would not take the MESSAGE
	s, created = g.table.GetOrCreate(rt.Key, func() *Session {
		if composing {
			// Decided here, where the table has found no live session: one ending still in the table, or
			// ending between lookup and submit, must not make an indication set up a new session.
			idle = true
			return nil
		}
		if g.draining.Load() {
			return nil
		}
		if badURI = messageURIProblem(req, true); badURI != "" {
			return nil
		}
		ns := newSession(g, rt.Key, originMessage)
		ns.coords = pm.notifyTo()
		ns.route = rt
		ns.callID = callID(req)
		// Everything that could refuse this MESSAGE is decided before ns is in the table, and ns goes in
		// holding it: once installed, another MESSAGE for the key may find ns and queue on it, and ns must
		// then be set up, never dropped with that MESSAGE failing for want of a setup. ns is not shared
		// yet, so its mutex is not needed.
		if o, ok := ns.checkTypeLocked(pm.contentType); !ok {
			refusedBy, refusal = ns, o
			return nil
		}
		if bound = g.limits.queueFull(); bound != nil {
			return nil
		}
		if bound = g.limits.admitSession(ns, sourceHost(req), false); bound != nil {
			return nil
		}
		if msgBound = g.limits.admitMessage(0); msgBound != nil { // max_queued_total filled since queueFull
			g.limits.releaseSession(ns)
			return nil
		}
		ns.queued.Add(1)
		ns.queue = append(ns.queue, pm)
		return ns
	})
	switch {
	case s != nil:
		return s, created, answer{}
	case idle:
		// RFC 3994 indications never create a session (SPEC §3.1): there is nobody to tell.
		g.publish(event.Event{Kind: event.MessageDropped, Key: rt.Key, Direction: event.ToMSRP, Reason: "iscomposing without session"})
		return nil, false, g.acceptedAnswer()
	case refusedBy != nil:
		refusedBy.logRefused(req, pm.contentType, refusal)
		return nil, false, answer{code: refusal.Code, reason: refusal.Reason, hdrs: acceptHeader(refusal, refusedBy)}
	case bound != nil:
		return nil, false, answer{code: 503, reason: "Service Unavailable", warning: "new session refused: " + bound.Error(), hdrs: []sip.Header{g.retryAfter()}}
	case msgBound != nil:
		return nil, false, answer{code: 503, reason: "Service Unavailable", warning: "message refused: " + msgBound.Error(), hdrs: []sip.Header{g.retryAfter()}}
	case badURI != "":
		return nil, false, answer{code: 400, reason: "Bad Request", warning: badURI}
	}
	return nil, false, answer{code: 503, reason: "Service Unavailable", warning: "draining: no new sessions"}
}

// waitReply arms the reply_wait timer of a queued MESSAGE (wait mode): the outcome answers it (finish), or
// reply_wait passes first and 202 goes out. finish may run before the timer is stored; whichever of the two
// comes second stops it.
func (pm *pageMessage) waitReply(g *Gateway) {
	t := time.AfterFunc(g.cfg.Gateway.Message.ReplyWait, func() {
		if pm.replied.CompareAndSwap(replyWaiting, replyAnswered) {
			g.answerMessage(pm.req, pm.r, answer{code: 202, reason: "Accepted"}, pm.released)
		}
	})
	pm.wait.Store(t)
	if pm.replied.Load() != replyWaiting {
		t.Stop()
	}
}

// notifyTo is where a failure notification goes: back to the sender. Rendered only when needed.
func (pm *pageMessage) notifyTo() Coords {
	from, to := pm.req.From(), pm.req.To()
	return Coords{From: uriString(&to.Address), To: uriString(&from.Address), RURI: uriString(&from.Address)}
}

// finish records the fate of a MESSAGE, exactly once: it is the MESSAGE's answer (wait mode), or, when the
// MESSAGE was answered already, a failure reaches the sender as a notification MESSAGE (SPEC §5) unless a
// setup-failed notification covers it.
func (pm *pageMessage) finish(g *Gateway, s *Session, o outcome, coveredBySetup bool) {
	pm.resolve(g, s, o, coveredBySetup, "")
}

// fail is finish for a failure the gateway decides itself, with why it did: why goes in the log line and, in
// wait mode, in a Warning of the MESSAGE's answer.
func (pm *pageMessage) fail(g *Gateway, s *Session, o outcome, why string) {
	pm.resolve(g, s, o, false, why)
}

func (pm *pageMessage) resolve(g *Gateway, s *Session, o outcome, coveredBySetup bool, why string) {
	if !pm.done.CompareAndSwap(false, true) {
		return
	}
	pm.stopDeadline()
	if s != nil {
		s.queued.Add(-1)
		g.limits.releaseMessage()
	}
	e := event.Event{Kind: event.MessageDelivered, Key: pm.key, Direction: event.ToMSRP, Code: o.Code, Reason: o.Reason, Time: time.Now()}
	if s != nil {
		e.MSRPSessionID = s.msrpID()
	}
	if o.delivered() {
		e.Duration = time.Since(pm.arrived)
	} else {
		e.Kind = event.MessageFailed
		args := []any{"key", pm.key, "code", o.Code, "reason", o.Reason, "call_id", callID(pm.req), "msrp_session_id", e.MSRPSessionID}
		if why != "" {
			args = append(args, "why", why)
		}
		g.log.Info("message to MSRP failed", args...)
	}
	g.publish(e)
	if pm.replied.CompareAndSwap(replyWaiting, replyResolved) {
		if t := pm.wait.Load(); t != nil {
			t.Stop()
		}
		// Not answerMessage, which sends a Warning through refuse: this MESSAGE was taken, and its failure is
		// counted as message_failed, not as a refused request.
		a := answer{code: o.Code, reason: o.Reason, warning: why, hdrs: acceptHeader(o, s)}
		g.recent.finish(pm.req, a)
		send := func() {
			g.respond(pm.req, pm.r, a.code, a.reason, a.warning, a.hdrs...)
			pm.released()
		}
		// Over TCP or TLS the write can block on a sender that does not read, and this may be an MSRP
		// connection's reader, which every session on that connection waits for: written in the background,
		// still holding its handler slot until it is.
		if c, ok := pm.r.(*connResponder); !ok || !sip.IsReliable(sip.NetworkToLower(c.network)) || !g.goBackground(send) {
			send()
		}
		return
	}
	// A control payload's failure is counted, but its sender is not told in a chat message: an isComposing
	// or an IMDN is the phone's own doing, and quoted back it would reach the user as chat text (SPEC §4).
	if !o.delivered() && !coveredBySetup && !pm.control() {
		g.notifyFailure(pm, o)
	}
}

// control reports whether the MESSAGE is a control payload (SPEC §4): by its type or, for CPIM, by what it
// wraps, as for a SEND (msrpside.go) — an RCS phone in page mode sends its IMDNs as message/cpim.
func (pm *pageMessage) control() bool {
	if mediaType(pm.contentType) == ctypeCPIM {
		m, err := cpim.Parse(pm.body)
		return err == nil && m.IsControl()
	}
	return cpim.IsControl(pm.contentType, nil)
}

// composing reports whether the MESSAGE is an isComposing indication (RFC 3994), bare or, as RCS phones send
// it, wrapped in CPIM: one never sets up a session (SPEC §3.1).
func (pm *pageMessage) composing() bool {
	if mediaType(pm.contentType) == ctypeCPIM {
		m, err := cpim.Parse(pm.body)
		return err == nil && mediaType(m.ContentType()) == ctypeIsComposing
	}
	return mediaType(pm.contentType) == ctypeIsComposing
}

// submit hands a MESSAGE to the session: queued while it is being set up or rebound after a re-INVITE, sent
// at once when it is up.
// accepted is false when the session cannot take it; the outcome says why, and bound is set when a queue
// bound (limits.max_queued_per_session counts queued and in-flight messages, max_queued_total all sessions')
// refused it.
func (s *Session) submit(pm *pageMessage) (o outcome, accepted bool, bound error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.retiredLocked(): // the caller's next attempt makes a new session
	case s.st == stateSettingUp || s.st == stateUp:
		if o, ok := s.checkTypeLocked(pm.contentType); !ok {
			return o, false, nil
		}
		if err := s.gw.limits.admitMessage(s.queued.Load()); err != nil {
			return outcome{503, "Service Unavailable"}, false, err
		}
		s.queued.Add(1)
		if s.st == stateSettingUp || s.rebinding {
			s.queue = append(s.queue, pm)
		} else {
			s.sendLocked(pm)
		}
		return outcome{}, true, nil
	}
	return outcomeSessionEnded, false, nil
}

// logRefused logs and counts a MESSAGE its session would not take (415: a content type its peer, or before
// the peer answered our accept_types, does not take), as refuse does the gateway's other refusals: its answer
// has no Warning, so it does not go through refuse.
func (s *Session) logRefused(req *sip.Request, ctype string, o outcome) {
	s.mu.Lock()
	msrpID := s.msrpID()
	s.mu.Unlock()
	s.log.Info("MESSAGE refused by its session", "code", o.Code, "reason", o.Reason, "content_type", ctype,
		"call_id", callID(req), "msrp_session_id", msrpID)
	// Counted before the answer leaves, so whoever sees the answer also sees the count.
	s.gw.publish(event.Event{Kind: event.RequestRefused, Code: o.Code, Reason: o.Reason, Key: s.key, CallID: callID(req)})
}

// checkTypeLocked refuses a content type the session peer (or, before the peer answered, our own
// message.accept_types) does not take: 415 with Accept (SPEC §4).
func (s *Session) checkTypeLocked(ctype string) (outcome, bool) {
	if s.peer != nil {
		if _, ok := s.outgoingType(ctype); ok {
			return outcome{}, true
		}
		return outcome{415, "Unsupported Media Type"}, false
	}
	rt := s.route
	if sdp.Match(rt.AcceptTypes, ctype) || (sdp.Match(rt.AcceptTypes, ctypeCPIM) && sdp.Match(rt.AcceptWrappedTypes, ctype)) {
		return outcome{}, true
	}
	return outcome{415, "Unsupported Media Type"}, false
}

// outgoingType decides how a page-mode content type travels to this peer: as it is, or wrapped in CPIM when
// the peer lists message/cpim first or takes the type only wrapped (RFC 4975 §13, SPEC §4).
func (s *Session) outgoingType(ctype string) (wrap bool, ok bool) {
	p := s.peer
	if mediaType(ctype) == ctypeCPIM {
		return false, sdp.Match(p.AcceptTypes, ctype)
	}
	peerCPIM := sdp.Match(p.AcceptTypes, ctypeCPIM)
	cpimFirst := len(p.AcceptTypes) > 0 && mediaType(p.AcceptTypes[0]) == ctypeCPIM
	direct := sdp.Match(p.AcceptTypes, ctype)
	wrapped := peerCPIM && (sdp.Match(p.AcceptWrappedTypes, ctype) || direct)
	switch {
	case cpimFirst && wrapped:
		return true, true
	case direct:
		return false, true
	case wrapped:
		return true, true
	}
	return false, false
}

// sendLocked sends one MESSAGE as a SEND on the bound MSRP session. Called with s.mu held, so SENDs leave in
// the order MESSAGEs were submitted.
func (s *Session) sendLocked(pm *pageMessage) {
	g := s.gw
	wrap, ok := s.outgoingType(pm.contentType)
	if !ok {
		go pm.finish(g, s, outcome{415, "Unsupported Media Type"}, false)
		return
	}
	if p := s.peer; p != nil && !p.Receives() && !pm.control() {
		// The peer said it takes no messages (a=sendonly or a=inactive; RFC 4975 §8.9 leaves control payloads
		// free): refused as its SEND would be. Control by what a CPIM MESSAGE wraps, as a SEND's (msrpside.go):
		// a page-mode phone sends its IMDNs as message/cpim.
		s.log.Info("MESSAGE refused: the session-mode peer does not receive messages", "direction", p.Direction, "msrp_session_id", s.ms.ID(), "call_id", s.callID)
		go pm.finish(g, s, outcome{403, "Forbidden"}, false)
		return
	}
	if pm.msgID == "" {
		pm.msgID = msrp.NewMessageID()
	}
	pm.relayed, pm.confirmed = s.relayedLocked(), 0
	out := &msrp.Outgoing{MessageID: pm.msgID, ContentType: pm.contentType, Body: pm.body, FailureReport: "yes", SuccessReport: pm.relayed}
	if wrap {
		if pm.wrappedAt.IsZero() {
			pm.wrappedAt = time.Now()
		}
		opts := cpim.WrapOptions{From: s.coords.To, To: s.coords.From, Now: pm.wrappedAt, IMDNMessageID: pm.imdnID}
		if g.cfg.Gateway.IMDN.Request {
			opts.IMDN = true
			// Only chat content asks for IMDNs: an IMDN never does (RFC 5438 §7.2.1.1), nor an isComposing.
			if !cpim.IsControl(pm.contentType, nil) {
				opts.Disposition = []string{cpim.PositiveDelivery, cpim.NegativeDelivery}
			}
		}
		c := cpim.Wrap(pm.contentType, pm.body, opts)
		pm.imdnID = c.IMDNMessageID()
		out.ContentType, out.Body = ctypeCPIM, c.Marshal()
	}
	what := "message"
	if wrap {
		what = "message wrapped in CPIM"
	}
	if err := s.checkPeerMaxSize(len(out.Body), what); err != nil {
		// Not sent: the peer said it takes nothing larger, and would answer 413 (SPEC §5: the SEND's 413).
		go pm.fail(g, s, outcomeOverPeerMaxSize, err.Error())
		return
	}
	pm.size = int64(len(out.Body))
	s.watchDeadline(pm)
	err := s.ms.Send(out, func(r msrp.SendResult) { s.sendDone(pm, r) })
	if err != nil {
		s.log.Warn("SEND refused locally", "err", err, "msrp_session_id", s.ms.ID())
		go pm.finish(g, s, sendOutcome(0, err), false)
		return
	}
	s.unacked = append(s.unacked, pm)
}

// errOverPeerMaxSize is checkPeerMaxSize's: a message we would send is larger than the peer takes.
var errOverPeerMaxSize = errors.New("larger than the peer's a=max-size")

// checkPeerMaxSize refuses a message whose body, as it would be sent (CPIM included), is larger than the
// peer's SDP a=max-size, the largest message it is willing to receive (RFC 4975 §8.6); none (0) is no limit.
// what names the message in the error. Called with s.mu held.
func (s *Session) checkPeerMaxSize(n int, what string) error {
	if s.peer == nil || s.peer.MaxSize <= 0 || int64(n) <= s.peer.MaxSize {
		return nil
	}
	return fmt.Errorf("%s of %d bytes is %w %d", what, n, errOverPeerMaxSize, s.peer.MaxSize)
}

// relayedLocked reports whether the peer's a=path goes through relays (RFC 4976): more than one URI, the first
// a relay's. A 200 to our SEND then says only that the relay took it, and SPEC §5 wants delivery seen.
func (s *Session) relayedLocked() bool { return s.peer != nil && len(s.peer.Path) > 1 }

// sendDone takes the result of pm's SEND. Without a relay it is pm's outcome. Through a relay, a 200 says
// only that the relay took pm (RFC 4976 §6.4.1): pm then awaits its REPORT (reported), at most until its
// deadline (deadline.go); an error is pm's outcome as without one. Nothing happens when pm is no longer
// among the session's unanswered messages: the session ended and failed pm, or handed it to a newer session
// (end.go), or a success REPORT came before the relay's 200. While a newer session is replacing s (replace),
// an error leaves pm unanswered, for that session to send.
func (s *Session) sendDone(pm *pageMessage, r msrp.SendResult) {
	o := sendOutcome(r.StatusCode, r.Err)
	if errors.Is(r.Err, msrp.ErrConnLost) && s.gw.draining.Load() {
		// The lost connection ends the session (SPEC §3.3), and what a session ending during the drain leaves
		// fails with 503, as in end.go: also when the loss reaches the SEND before the session's end does.
		o = outcomeDraining
	}
	s.mu.Lock()
	if !o.delivered() && s.heir != nil && s.st < stateEnding {
		// A newer INVITE is replacing s and waits for the answers to its SENDs (replace): a failure leaves pm
		// unanswered, to move to the new session.
		s.mu.Unlock()
		return
	}
	if !s.takeUnackedLocked(pm) {
		s.mu.Unlock()
		return
	}
	gone := r.StatusCode == 481
	if gone {
		s.peerGone = true // retired before pm is answered: a sender retrying at once gets a new session
	}
	if o.delivered() && pm.relayed {
		if s.awaiting == nil {
			s.awaiting = make(map[string]*pageMessage)
		}
		s.awaiting[pm.msgID] = pm
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	pm.finish(s.gw, s, o, false)
	if gone {
		s.peerSessionGone()
	}
}

// retireGone retires s when code, the answer or failure REPORT to one of its SENDs, is 481 (peerSessionGone),
// and reports whether it did. Called before the failed message is answered, so that the sender's next MESSAGE
// for the key, sent at once, sets up a new session instead of landing on s before its end.
func (s *Session) retireGone(code int) bool {
	if code != 481 {
		return false
	}
	s.mu.Lock()
	s.peerGone = true
	s.mu.Unlock()
	return true
}

// peerSessionGone ends s, whose SEND was answered or reported 481 (retired already: peerGone): the peer's MSRP
// session does not exist (any more), and RFC 4975 says the sender should end the session then. Kept, it would
// fail every later MESSAGE for its key the same way; ended, the next one sets up a new session. What it still
// holds fails and is reported, as at any end.
func (s *Session) peerSessionGone() {
	s.mu.Lock()
	callID := s.callID
	s.mu.Unlock()
	s.log.Info("the peer's MSRP session does not exist (481): ending the session", "msrp_session_id", s.msrpID(), "call_id", callID)
	s.gw.goBackground(func() { s.gw.endSession(s, "peer_session_gone", outcomeSessionEnded, true) })
}

// reported applies a REPORT about one of the session's messages. It returns the message the REPORT settles,
// and how, or nil. Only a relayed message's REPORTs settle it: a failure REPORT at once, a success REPORT once
// the success REPORTs so far cover the whole message (RFC 4975 §7.1.3 lets a receiver report chunk by chunk),
// the relay's 200 having come already or not yet. A failure REPORT before any response has also ended the
// SEND in the msrp stack (sendDone failed pm then), so it finds nothing left here.
func (s *Session) reported(r *msrp.Report) (*pageMessage, outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pm := s.awaiting[r.MessageID]
	if pm == nil {
		for _, p := range s.unacked {
			if p.msgID == r.MessageID {
				pm = p
				break
			}
		}
	}
	if pm == nil || !pm.relayed {
		return nil, outcome{}
	}
	if r.StatusCode == 200 && !pm.confirm(r.ByteRange) {
		return nil, outcome{}
	}
	if r.StatusCode != 200 && s.heir != nil && s.st < stateEnding {
		// A newer INVITE is replacing s and waits for its messages' answers (replace): a failure leaves pm to
		// move to the new session, as a failed SEND does (sendDone).
		return nil, outcome{}
	}
	delete(s.awaiting, pm.msgID)
	s.takeUnackedLocked(pm)
	return pm, sendOutcome(r.StatusCode, nil)
}

// confirm adds the Byte-Range of a success REPORT to what the REPORTs so far confirm, and reports whether that
// is now the whole message. A REPORT without Byte-Range is about the whole message. Ranges that leave a gap
// confirm nothing beyond it, so out-of-order partial REPORTs may leave a message waiting for its deadline:
// never delivered by mistake.
func (pm *pageMessage) confirm(br msrp.ByteRange) bool {
	if br.Start == 0 {
		return true
	}
	if br.Start <= pm.confirmed+1 && br.End > pm.confirmed {
		pm.confirmed = br.End
	}
	return pm.confirmed >= pm.size
}

// sentLocked returns the messages sent on s whose outcome is not known yet, in the order sent: those a relay
// took, waiting for their REPORT, then those unanswered. MESSAGEs are sent in arrival order.
func (s *Session) sentLocked() []*pageMessage {
	if len(s.awaiting) == 0 {
		return s.unacked
	}
	sent := make([]*pageMessage, 0, len(s.awaiting)+len(s.unacked))
	for _, pm := range s.awaiting {
		sent = append(sent, pm)
	}
	slices.SortFunc(sent, func(a, b *pageMessage) int { return a.arrived.Compare(b.arrived) })
	return append(sent, s.unacked...)
}

// takeUnackedLocked takes pm off the session's unanswered messages, and reports whether it was there.
func (s *Session) takeUnackedLocked(pm *pageMessage) bool {
	for i, p := range s.unacked { // SENDs are mostly answered in order: pm is near the front
		if p == pm {
			n := len(s.unacked) - 1
			copy(s.unacked[i:], s.unacked[i+1:])
			s.unacked[n] = nil
			s.unacked = s.unacked[:n]
			return true
		}
	}
	return false
}

// flushLocked sends everything queued during setup or a rebind: the MESSAGEs in arrival order, then the
// gateway's own messages (sendControl) in the order made.
func (s *Session) flushLocked() {
	q, control := s.queue, s.control
	s.queue, s.control = nil, nil
	for _, pm := range q {
		s.sendLocked(pm)
	}
	for _, c := range control {
		if err := s.sendControlLocked(c, true); err != nil {
			what := "IMDN not sent" // the same lines as when sent at once (msrpside.go)
			if c.in != nil {
				what = "REPORT not sent"
			}
			s.log.Info(what, "err", err, "msrp_session_id", s.ms.ID())
		}
	}
}

// acceptHeader builds the Accept header of a 415 (RFC 3428 §9): the peer's types once known, else ours.
func acceptHeader(o outcome, s *Session) []sip.Header {
	if o.Code != 415 || s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	accept, wrapped := s.route.AcceptTypes, s.route.AcceptWrappedTypes
	if s.peer != nil {
		accept, wrapped = s.peer.AcceptTypes, s.peer.AcceptWrappedTypes
	}
	if !sdp.Match(accept, ctypeCPIM) {
		// Wrapped types travel only inside message/cpim (RFC 4975 §8.6): without it they are not taken
		// (checkTypeLocked, outgoingType), and naming them would invite MESSAGEs refused in turn.
		wrapped = nil
	}
	lists := [][]string{accept, wrapped}
	// A type is often both accepted and accepted wrapped: named once, where it first comes.
	var types []string
	seen := make(map[string]bool)
	for _, list := range lists {
		for _, t := range list {
			t = sipMediaRange(t)
			if k := strings.ToLower(strings.TrimSpace(t)); !seen[k] {
				seen[k] = true
				types = append(types, t)
			}
		}
	}
	return []sip.Header{sip.NewHeader("Accept", strings.Join(types, ", "))}
}

// sipMediaRange renders an MSRP accept-types entry for a SIP Accept header: MSRP's "anything", "*" (RFC 4975
// §8.6), is no media-range in SIP, whose is "*/*" (RFC 3261 §20.1).
func sipMediaRange(t string) string {
	if strings.TrimSpace(t) == "*" {
		return "*/*"
	}
	return t
}

// msrpMediaType is a SIP Content-Type value as MSRP writes one: without the whitespace SIP allows around
// ";" and "=" (RFC 3261 §25.1 SEMI, EQUAL), which RFC 4975's media-type grammar (§9) has no room for, so a
// strict MSRP parser would refuse "text/plain; charset=UTF-8". What is inside a quoted parameter value
// (quoted-string, backslash escapes included) is the sender's and is kept as it is.
func msrpMediaType(v string) string {
	v = strings.TrimSpace(v)
	if !strings.ContainsAny(v, " \t") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	quoted, escaped := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				quoted = false
			}
		case c == '"':
			quoted = true
		case c == ' ' || c == '\t':
			continue // outside quotes, whitespace only ever surrounds a token, ";" or "="
		}
		b.WriteByte(c)
	}
	return b.String()
}

// mediaType returns "type/subtype" of a Content-Type value, lower-cased, without parameters.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// refusalOf turns a routing error into a response: a *Refusal, even wrapped, is the answer it says, when it
// says a failure (300–699); any other code would claim what did not happen (a 200) or not be SIP at all.
func refusalOf(err error) answer {
	var r *Refusal
	if errors.As(err, &r) {
		if r.Code < 300 || r.Code > 699 {
			return answer{code: 500, reason: "Server Internal Error", warning: "routing refused the request with code " + itoa(r.Code) + ", which is not a failure"}
		}
		reason := r.Reason
		if reason == "" {
			reason = "Refused"
		}
		return answer{code: r.Code, reason: reason, warning: r.Warning}
	}
	return answer{code: 500, reason: "Server Internal Error", warning: "routing failed: " + err.Error()}
}

package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
)

// This file ends sessions (SPEC §3.3): BYE or CANCEL on the SIP side, the MSRP session closed, every message
// still queued or unanswered failed and reported, and the session gone from the table.

// endSession ends s once. Messages still queued or unanswered fail with o, the reason the session ends (a
// SEND's own result, when it comes later, no longer counts), or with 503 when the gateway is draining (end);
// bye says whether the dialog should get our BYE.
func (g *Gateway) endSession(s *Session, reason string, o outcome, bye bool) {
	g.end(s, ending{reason: reason, o: o, bye: bye})
}

// replace ends old for s, a newer INVITE's session for the same key (SPEC §3.2 step 3): a setup in progress is
// cancelled, an established dialog gets BYE, and old's messages still queued or unanswered move to s instead
// of failing (SPEC §3.3), the unanswered first in the order they were sent, ahead of anything s holds.
//
// What still concerns old afterwards loses nothing by its end. A REPORT the peer sends on old's MSRP session,
// closed and unrouted now, is dropped by the MSRP endpoint (a REPORT gets no response), and would decide
// nothing: a SEND the peer endpoint answered before the replacement has its outcome (a failure REPORT after its
// 200 is only logged, HandleReport), and one unanswered, or one a relay took that still awaits its REPORT, has
// moved to s, whose SEND (or REPORT) decides it, under the same Message-ID. The REPORTs old owes for SENDs it received go to those SENDs' From-Path (RFC 4975 §7.1.2),
// old's peer session, which ends with it: they are dropped, the outcome still counted (reportBack). IMDNs
// are end to end (RFC 5438): those old makes later go to s (sendControl). A page-mode IMDN is a MESSAGE,
// routed by its key like any other, and s has the key.
//
// Like a BYE (onBye), the newer INVITE may have overtaken the peer's answers to SENDs of old: it got those
// messages and answered them just before it sent the INVITE. Moved, they would be delivered a second time, so
// old's SENDs on the wire, and behind a relay those awaiting the peer's REPORT, get byeGrace to be answered
// first. Only a 200 or a success REPORT settles one meanwhile (sendDone, reported): an error, a 481 from a
// peer that dropped old, leaves it to move; and whatever else ends old meanwhile (its
// connection lost, a timer) moves what it holds to s all the same (end). The caller has not answered s's
// INVITE yet, so s is not up meanwhile and what moves still goes ahead of what s holds.
func (g *Gateway) replace(old, s *Session) {
	old.mu.Lock()
	if old.st < stateEnding {
		old.heir = s
	}
	old.mu.Unlock()
	old.awaitAnswers(byeGrace)
	g.end(old, ending{reason: "replaced", o: outcomeSessionEnded, bye: true, heir: s})
}

// ending is how a session ends: endSession's arguments, and what only replace, Shutdown and setupFailed need.
type ending struct {
	reason  string
	o       outcome
	bye     bool
	heir    *Session        // takes over the messages left (replace)
	flush   context.Context // bounds the wait for what is queued on the MSRP connection, REPORTs (Shutdown)
	failure *setupFailure   // the setup failed (setupFailed): setup-failed is raised, and covers the messages left
}

// end ends s once, as e says, and reports whether it did: false when s was ending already. Taking s's messages
// and marking it ending is one step, so a MESSAGE for s either is among them or finds s ending and looks for
// its session again (the heir, after a replace).
func (g *Gateway) end(s *Session, e ending) bool {
	s.mu.Lock()
	if s.st >= stateEnding {
		s.mu.Unlock()
		return false
	}
	prev := s.st
	s.st = stateEnding
	if e.heir == nil && e.failure == nil {
		e.heir = s.heir // a newer INVITE is replacing s (replace): its session takes what s holds, however s ends
	}
	s.heir = e.heir
	left := append(s.sentLocked(), s.queue...)
	s.unacked, s.awaiting, s.queue = nil, nil, nil
	var imdns []controlMsg // IMDNs not sent yet: the heir carries them, as the messages; REPORTs are this MSRP session's
	for _, c := range s.control {
		if c.in == nil {
			imdns = append(imdns, c)
		}
	}
	s.control = nil
	cancel := s.cancel
	s.cancel = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.reinvite.stop()
	sendBye := e.bye && !s.byeSent && (s.uas != nil || s.uac != nil || s.dialog != nil)
	s.byeSent = true
	ms := s.ms
	callID := s.callID // a setup under way may set it still
	s.mu.Unlock()

	if cancel != nil {
		// A setup in progress (sipgo sends the CANCEL, SPEC §3.2 step 3), or a rebind after a re-INVITE.
		if e.heir != nil {
			cancel(errReplaced) // not a failed setup: its messages carry on with the heir
		} else {
			cancel(errEnded)
		}
	}
	if e.heir != nil {
		moved := e.heir.adopt(s, left, imdns)
		s.log.Info("session replaced by a newer INVITE", "moved", moved, "imdns", len(imdns))
		left = left[moved:]
	}
	if f := e.failure; f != nil {
		// setup-failed (SPEC §5) comes before the messages it covers fail, and only from the end that took s:
		// a setup an operator or Shutdown ended meanwhile did not fail, whatever its INVITE got.
		r := f.reported()
		attrs := []any{"code", r.Code, "reason", r.Reason, "call_id", s.callID, "msrp_session_id", s.msrpID()}
		if f.err != nil { // none when the INVITE's own final response failed it: code and reason say it all
			attrs = append(attrs, "err", f.err)
		}
		s.log.Warn("session setup failed", attrs...)
		ev := s.baseEvent(event.SetupFailed)
		ev.Code, ev.Reason = r.Code, r.Reason
		g.publish(ev)
	}
	covered := e.failure != nil
	if e.failure == nil && g.draining.Load() {
		// SPEC §3.3: what a session ending during the drain leaves fails with 503, whatever ended it: the peer's
		// BYE, a timer, the MSRP connection lost or stalled, a failed rebind. A new session for the key would be
		// refused now: the sender is better told the gateway is going away. A failed setup keeps the code its
		// cause maps to (SPEC §5).
		e.o = outcomeDraining
	}
	for _, pm := range left {
		pm.finish(g, s, e.o, covered)
	}
	if ms != nil {
		if e.flush != nil {
			if err := ms.Flush(e.flush); err != nil && !errors.Is(err, msrp.ErrNotBound) {
				s.log.Info("MSRP session closed with messages unwritten", "err", err, "msrp_session_id", ms.ID())
			}
		}
		ms.Close()
	}
	g.table.Delete(s)
	g.limits.releaseSession(s)
	if sendBye {
		g.bye(s) // forgets the dialog once the BYE is done: an ACK still on its way must find it
	} else if s.dialogKey != "" {
		g.dialogs.CompareAndDelete(s.dialogKey, s)
	}
	s.mu.Lock()
	s.st = stateEnded
	s.mu.Unlock()
	// session_ended ends what session_started, or a setup under way, began; a failed setup's is setup_failed.
	if prev == stateUp || e.failure == nil {
		ev := s.baseEvent(event.SessionEnded)
		ev.Reason = e.reason
		g.publish(ev)
	}
	s.log.Info("session ended", "reason", e.reason, "call_id", callID, "msrp_session_id", s.msrpID())
	return true
}

// errEnded cancels the setup, or the rebind, of a session ended otherwise (an operator, Shutdown, a timer). It
// is not context.Canceled, the cause the gateway closing gives: a setup cut short by that still fails.
var errEnded = errors.New("session ended")

// bye sends BYE on the session's dialog, in the background; a dead peer does not hold anything up.
func (g *Gateway) bye(s *Session) {
	s.mu.Lock()
	confirmed, uas, uac, acked, target := s.dialog, s.uas, s.uac, s.acked, s.target
	s.mu.Unlock()
	forget := func() {
		if s.dialogKey != "" {
			g.dialogs.CompareAndDelete(s.dialogKey, s)
		}
	}
	g.byes.Add(1)
	started := g.goBackground(func() {
		defer g.byes.Add(-1)
		// Bounded, and abandoned when the gateway is closed outright (Shutdown waits for BYEs before that).
		ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
		defer cancel()
		var err error
		switch {
		case confirmed != nil:
			err = g.byeConfirmed(ctx, confirmed, target)
		case uac != nil:
			err = g.byeUAC(ctx, acked, uac, target)
		case uas != nil:
			err = g.byeUAS(ctx, s.answered, uas, target)
		}
		if err != nil {
			s.log.Debug("BYE failed", "err", err, "call_id", s.callID)
		}
		forget()
	})
	if !started { // the gateway is closed outright: no BYE goes out any more
		g.byes.Add(-1)
		forget()
	}
}

// byeLater sends BYE on the dialog of a setup that failed after its 2xx, unless the session's dialog got one
// already, or the peer's: an operator or a timer ending the session meanwhile sent it (end), and the setup
// failing because of that end must not send a second.
func (g *Gateway) byeLater(s *Session) {
	s.mu.Lock()
	dialog, sent := s.uac != nil || s.dialog != nil, s.byeSent
	s.byeSent = true
	s.mu.Unlock()
	if dialog && !sent {
		g.bye(s)
	}
}

// adopt takes over pms, the messages still queued or unanswered on from, the session s replaces, and imdns,
// from's IMDNs not sent yet: ahead of its own, in their order, sent once s is up (or rebound). It returns how
// many messages it took: none when s is ending already (the IMDNs are dropped then), unless a newer INVITE
// replaced s in turn: its heir takes them then. Two INVITEs for the key racing each other replace in either
// order, and the messages of the session the first replaced must reach the second's, never fail.
func (s *Session) adopt(from *Session, pms []*pageMessage, imdns []controlMsg) int {
	for _, pm := range pms {
		pm.stopDeadline() // it watched from's connection
	}
	s.mu.Lock()
	if s.st >= stateEnding {
		heir := s.heir
		s.mu.Unlock()
		if heir == nil {
			return 0
		}
		return heir.adopt(from, pms, imdns)
	}
	defer s.mu.Unlock()
	from.queued.Add(-int64(len(pms)))
	s.queued.Add(int64(len(pms)))
	if s.st == stateSettingUp || s.rebinding {
		s.queue = append(pms, s.queue...)
		s.control = append(imdns, s.control...)
		return len(pms)
	}
	for _, pm := range pms {
		s.sendLocked(pm)
	}
	for _, c := range imdns {
		if err := s.sendControlLocked(c, false); err != nil {
			s.log.Info("IMDN of the replaced session not sent", "err", err, "msrp_session_id", s.ms.ID())
		}
	}
	return len(pms)
}

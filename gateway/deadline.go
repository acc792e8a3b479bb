package gateway

import (
	"slices"
	"time"
)

// This file holds the one timer of a MESSAGE sent as a SEND: its deadline, twice msrp.transaction_timeout after
// the SEND was queued. finish stops it. When it passes, the message is still either
//
//   - unanswered: the MSRP peer stopped reading but keeps its connection open. The msrp stack starts a SEND's
//     transaction timer only once the SEND is written (RFC 4975 §7.1.1), so SENDs queued behind a write that
//     never completes would wait for no timer at all, and their MESSAGEs would stay unreported until
//     message_timeout. The connection is stuck: the session ends with BYE, which fails (and reports)
//     everything it holds; or
//   - taken by the relay in the peer's path (its 200), with no REPORT since (message.go, sendDone). The relay
//     reports a failure itself when its next hop does not answer within its own 30 s (RFC 4976 §6.4.1), so by
//     now the REPORT is lost: the message alone fails, 408, and the session carries on.

// watchDeadline arms the deadline of a MESSAGE about to be sent as a SEND on s.
func (s *Session) watchDeadline(pm *pageMessage) {
	after := 2 * s.gw.cfg.MSRP.TransactionTimeout
	if after <= 0 {
		after = time.Minute
	}
	pm.deadline = time.AfterFunc(after, func() { s.deadlinePassed(pm, after) })
}

func (s *Session) deadlinePassed(pm *pageMessage, after time.Duration) {
	if pm.done.Load() {
		return
	}
	s.mu.Lock()
	awaiting := s.awaiting[pm.msgID] == pm
	if awaiting {
		delete(s.awaiting, pm.msgID)
	}
	unanswered := !awaiting && slices.Contains(s.unacked, pm)
	s.mu.Unlock()
	if !awaiting && !unanswered {
		// Its outcome is on its way: a REPORT or the SEND's result took it off s, and finishes it, or s ended
		// and failed it or handed it to a newer session. Nothing is stalled.
		return
	}
	if awaiting {
		s.log.Info("no REPORT for a message the relay took, failing it", "waited", after, "message_id", pm.msgID,
			"msrp_session_id", s.msrpID(), "call_id", s.callID)
		pm.finish(s.gw, s, outcomeNoReport, false)
		return
	}
	s.log.Warn("MSRP peer stalled: SEND neither written nor answered, ending the session",
		"waited", after, "msrp_session_id", s.msrpID(), "call_id", s.callID)
	s.gw.endSession(s, "msrp_stalled", outcomeMSRPConnFailed, true)
}

// stopDeadline stops the deadline, if any.
func (pm *pageMessage) stopDeadline() {
	if pm.deadline != nil {
		pm.deadline.Stop()
	}
}

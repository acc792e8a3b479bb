package gateway

import "time"

// This file catches an MSRP peer that stopped reading but keeps its connection open. The msrp stack starts a
// SEND's transaction timer only once the SEND is written (RFC 4975 §7.1.1), so SENDs queued behind a write
// that never completes would wait for no timer at all, and their MESSAGEs would stay unreported until
// message_timeout. A SEND still unanswered after twice msrp.transaction_timeout means the connection is
// stuck: the session ends with BYE, which fails (and reports) everything it holds.

// watchStall arms the stall timer of a MESSAGE about to be sent as a SEND on s. finish stops it.
func (s *Session) watchStall(pm *pageMessage) {
	after := 2 * s.gw.cfg.MSRP.TransactionTimeout
	if after <= 0 {
		after = time.Minute
	}
	pm.stall = time.AfterFunc(after, func() {
		if pm.done.Load() {
			return
		}
		s.log.Warn("MSRP peer stalled: SEND neither written nor answered, ending the session",
			"waited", after, "msrp_session_id", s.msrpID(), "call_id", s.callID)
		s.gw.endSession(s, "msrp_stalled", outcomeMSRPConnFailed, true)
	})
}

// stopStall stops the stall timer, if any.
func (pm *pageMessage) stopStall() {
	if pm.stall != nil {
		pm.stall.Stop()
	}
}

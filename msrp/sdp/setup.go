package sdp

import "strings"

// AnswerSetup implements RFC 6135 for the answerer: given the offer's a=setup it returns what we answer and
// whether we are the active (connecting) side.
//
// "actpass" -> ("passive", false): RFC 6135 §4.2.2 says an answerer that is not behind NAT SHOULD answer
// passive, and a gateway is not. "active" -> ("passive", false). "passive" -> ("active", true). Absent
// (and "holdconn" or anything unknown, which RFC 6135 §4.2.1 treats as absent) -> ("passive", false):
// the RFC 4145 default is that the offerer connects, which is also RFC 4975's rule.
func AnswerSetup(offer string) (answer string, weActive bool) {
	if strings.EqualFold(strings.TrimSpace(offer), SetupPassive) {
		return SetupActive, true
	}
	return SetupPassive, false
}

// ReanswerSetup is AnswerSetup for a re-offer on an established session, where weActive says whether we are
// the active side now. An answer says active or passive, never actpass (RFC 4145 §4.1). To "actpass" we keep
// our role, so the side that connected stays active and the current connection stays in use; "active",
// "passive" and absent decide as in AnswerSetup (absent: the offerer, now the peer, connects).
func ReanswerSetup(offer string, weActive bool) (answer string, active bool) {
	if strings.EqualFold(strings.TrimSpace(offer), SetupActPass) {
		if weActive {
			return SetupActive, true
		}
		return SetupPassive, false
	}
	return AnswerSetup(offer)
}

// OffererActive tells the offerer whether it connects, given the a=setup of the answer: "active" in the
// answer means the peer connects (false); "passive" or absent means we connect (true, RFC 4145 and RFC 4975
// §8.5 defaults). An answer cannot legitimately say "actpass"; we then connect, as for "passive".
func OffererActive(answerSetup string) bool {
	return !strings.EqualFold(strings.TrimSpace(answerSetup), SetupActive)
}

package gateway

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/msrp"
	"github.com/msrpgw/msrpgw/msrp/sdp"
)

// state is where a gateway session is in its life (SPEC §7 names the first three).
type state int32

const (
	stateSettingUp state = iota
	stateUp
	stateEnding
	stateEnded
)

func (s state) String() string {
	switch s {
	case stateSettingUp:
		return "setting-up"
	case stateUp:
		return "up"
	case stateEnding:
		return "ending"
	}
	return "ended"
}

// Origins of a session: which side started it.
const (
	originMessage = "message" // a page-mode MESSAGE (msg_to_msrp)
	originInvite  = "invite"  // an INVITE from the session-mode side (msrp_gw_answer)
)

// Coords are the MESSAGE-side coordinates of a session: From, To and Request-URI of the MESSAGEs generated
// from its SENDs. The page-mode user is To / RURI.
type Coords struct {
	From, To, RURI string
}

// Session is one gateway session: an MSRP chat session bound to a series of page-mode MESSAGEs.
type Session struct {
	gw      *Gateway
	key     string
	origin  string
	created time.Time
	log     *slog.Logger

	mu       sync.Mutex
	st       state
	coords   Coords
	uris     atomic.Pointer[messageURIs] // coords parsed, for the MESSAGEs the session generates
	callID   string
	ms       *msrp.Session
	route    Route      // accept types we offered
	local    *sdp.Media // our current SDP
	peer     *sdp.Media // the peer's current SDP
	sdpID    uint64
	sdpVer   uint64
	weActive bool
	// The SIP dialog: sipgo's while the session sets up (uac or uas), then what is left of it once the session
	// is up (dialog; uac and uas are nil then: confirmLocked).
	dialog    *confirmedDialog
	uac       *sipgo.DialogClientSession
	acked     chan struct{} // of a dialog our INVITE set up: closed once its ACK is written, or failed (setup); a BYE waits for it
	uas       *sipgo.DialogServerSession
	answered  chan struct{} // of an INVITE's session: closed once the INVITE is answered or refused (onInvite); a BYE waits for it
	target    *sip.Uri      // the dialog's remote target once a re-INVITE's Contact refreshed it (RFC 3261 §12.2.2); nil: the first Contact
	dialogKey string
	queue     []*pageMessage          // MESSAGEs waiting for the session to come up (or to rebind), in arrival order
	unacked   []*pageMessage          // MESSAGEs sent as SENDs not answered yet, in the order sent
	awaiting  map[string]*pageMessage // MESSAGEs whose SEND the relay in the peer's path took (200), waiting for their REPORT, by Message-ID
	control   []controlMsg            // messages of the gateway's own (IMDNs, REPORTs) waiting for the session to come up or to rebind, in the order made
	rebinding bool                    // up, but binding to the peer path a re-INVITE changed: MESSAGEs, IMDNs and REPORTs queue meanwhile
	cancel    context.CancelCauseFunc // ends the setup, or the rebind, in progress
	moved     chan struct{}           // closed when a re-INVITE changes the peer's path during setup: bindSetup binds again
	heir      *Session                // the newer INVITE's session replacing this one (end.go): takes its messages, and its later IMDNs
	timer     *time.Timer
	upAt      time.Time
	byeSent   bool
	// peerBye: the peer said BYE; the session only waits for the answers to SENDs in flight (byeGrace), and a
	// new MESSAGE for its key starts a new session.
	peerBye bool
	// peerGone: a SEND of ours was answered, or reported, 481 (peerSessionGone): the session is ending, and a
	// new MESSAGE for its key starts a new session from the moment the failed one is answered.
	peerGone bool
	// closing: an operator ended the session (EndSession); as after the peer's BYE, it waits for the answers
	// to SENDs in flight, and a new MESSAGE for its key starts a new session.
	closing bool

	firstMu    sync.Mutex  // held while the first message of an RCS INVITE is delivered (deliverFirst)
	firstParts []sdp.Part  // of an RCS INVITE: its parts next to the SDP, not delivered yet; under firstMu
	firstDone  atomic.Bool // no first parts to deliver (any more): every later SEND skips firstMu
	// lostInSetup: the MSRP connection of a MESSAGE-first session was lost before it came up (HandleClose).
	// The msrp stack calls HandleClose once per session, so it never comes up: its setup fails instead.
	lostInSetup bool
	reinvite    reinviteAnswer // the 2xx to the peer's last re-INVITE over UDP, retransmitted until its ACK
	taken       *recentIDs     // Message-IDs of the last messages taken from the peer (msrpside.go); nil before the first
	// offerCSeq is the CSeq number of the peer's last re-INVITE without SDP, whose 2xx carried our offer: its
	// ACK carries the answer (RFC 3264, RFC 3261 §14.2). 0 when no answer is due.
	offerCSeq uint32
	// remoteCSeq is the CSeq number of the peer's last request in the dialog, if hasRemoteCSeq: a re-INVITE or
	// BYE with a lower one is out of order (RFC 3261 §12.2.2, takeRemoteCSeqLocked).
	remoteCSeq    uint32
	hasRemoteCSeq bool
	// remoteTag is the peer's tag in the dialog, set before the dialog is stored (g.dialogs) and never changed:
	// with the Call-ID and our tag it names the dialog (RFC 3261 §12).
	remoteTag string

	lastMessage atomic.Int64 // unix nanoseconds of the last MESSAGE from the page-mode side
	lastSend    atomic.Int64 // unix nanoseconds of the last SEND from the session-mode side
	toMSRP      atomic.Uint64
	toSIP       atomic.Uint64
	// toSIPOpen counts MESSAGEs made from this session's SENDs whose outcome is not known yet: queued for the
	// page-mode side or in flight (limits.max_queued_per_session, msrpside.go).
	toSIPOpen atomic.Int64
	queued    atomic.Int64

	peerRejected chan error // the MSRP peer's TLS certificate was refused (tls.go); capacity 1
}

func newSession(gw *Gateway, key, origin string) *Session {
	now := time.Now()
	s := &Session{
		gw:      gw,
		key:     key,
		origin:  origin,
		created: now,
		st:      stateSettingUp,
		sdpID:   uint64(now.UnixNano()),

		peerRejected: make(chan error, 1),
	}
	s.lastMessage.Store(now.UnixNano())
	s.lastSend.Store(now.UnixNano())
	s.log = gw.log.With("key", key)
	return s
}

// takeRemoteCSeqLocked takes cseq, the CSeq number of a request from the peer in the dialog, as the remote
// sequence number, and reports whether it is in order. A lower number than the last one is out of order (RFC
// 3261 §12.2.2: answered 500) and changes nothing; last is then the number it came after. Called with s.mu
// held.
func (s *Session) takeRemoteCSeqLocked(cseq uint32) (last uint32, ok bool) {
	if s.hasRemoteCSeq && cseq < s.remoteCSeq {
		return s.remoteCSeq, false
	}
	s.remoteCSeq, s.hasRemoteCSeq = cseq, true
	return cseq, true
}

// Key returns the correlation key.
func (s *Session) Key() string { return s.key }

func (s *Session) state() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// ending reports whether the session is on its way out; a new request for its key starts a new session.
func (s *Session) ending() bool {
	return s.state() >= stateEnding
}

// retired reports whether a new MESSAGE for the session's key starts a new session: it is ending, or its peer
// said BYE, or its MSRP session is gone (481), or an operator ended it. SENDs from the peer still reach a
// retired session until it ends (byeGrace).
func (s *Session) retired() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st >= stateEnding || s.retiredLocked()
}

// retiredLocked: the session takes no new MESSAGE, though it has not begun to end.
func (s *Session) retiredLocked() bool { return s.peerBye || s.peerGone || s.closing }

func (s *Session) msrpID() string {
	if s.ms == nil {
		return ""
	}
	return s.ms.ID()
}

// sipCallID is the Call-ID of the session's dialog ("" before its INVITE was built).
func (s *Session) sipCallID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callID
}

// baseEvent fills the fields every event about this session carries.
func (s *Session) baseEvent(k event.Kind) event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return event.Event{
		Kind: k, Time: time.Now(), Key: s.key, Origin: s.origin,
		FromURI: s.coords.From, ToURI: s.coords.To, RURI: s.coords.RURI,
		CallID: s.callID, MSRPSessionID: s.msrpID(),
	}
}

// armTimers starts the session's single lifetime timer. It fires at the earliest of the three deadlines of
// SPEC §3.3, each counted from the later of the session's start and its last event; on firing it re-checks
// the timestamps, so the hot path only stores a timestamp and never touches the timer.
func (s *Session) armTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st >= stateEnding || s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(s.nextDeadline(time.Now()), s.checkTimers)
}

// nextDeadline returns how long until the earliest deadline, from now.
func (s *Session) nextDeadline(now time.Time) time.Duration {
	reason, at := s.deadline()
	_ = reason
	d := at.Sub(now)
	if d < 0 {
		d = 0
	}
	return d
}

// deadline returns the earliest deadline and which timer it belongs to.
func (s *Session) deadline() (string, time.Time) {
	g := s.gw.cfg.Gateway
	reason := "message_timeout"
	at := time.Unix(0, s.lastMessage.Load()).Add(g.MessageTimeout)
	if t := time.Unix(0, s.lastSend.Load()).Add(g.SessionTimeout); t.Before(at) {
		reason, at = "session_timeout", t
	}
	if g.MaxDuration > 0 {
		if t := s.created.Add(g.MaxDuration); t.Before(at) {
			reason, at = "max_duration", t
		}
	}
	return reason, at
}

func (s *Session) checkTimers() {
	now := time.Now()
	reason, at := s.deadline()
	if !now.Before(at) {
		s.log.Info("session timer expired", "timer", reason)
		s.gw.endSession(s, reason, outcomeSessionEnded, true)
		return
	}
	s.mu.Lock()
	if s.st < stateEnding && s.timer != nil {
		s.timer.Reset(at.Sub(now))
	}
	s.mu.Unlock()
}

func (s *Session) touchMessage() { s.lastMessage.Store(time.Now().UnixNano()) }
func (s *Session) touchSend()    { s.lastSend.Store(time.Now().UnixNano()) }

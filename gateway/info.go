package gateway

import (
	"sort"
	"time"

	"github.com/msrpgw/msrpgw/msrp"
)

// SessionInfo is a snapshot of one gateway session, for the admin API and the CLI.
type SessionInfo struct {
	Key            string
	State          string // setting-up | up | ending
	Origin         string // message | invite
	Coords         Coords
	MSRPSessionID  string
	MSRPPeerPath   string
	CallID         string
	Created        time.Time
	LastMessage    time.Time
	LastSend       time.Time
	Queued         int
	MessagesToMSRP uint64
	MessagesToSIP  uint64
}

func (s *Session) info() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := SessionInfo{
		Key: s.key, State: s.st.String(), Origin: s.origin, Coords: s.coords, CallID: s.callID,
		Created: s.created, Queued: int(s.queued.Load()),
		LastMessage: seenAt(s.lastMessage.Load(), s.created), LastSend: seenAt(s.lastSend.Load(), s.created),
		MessagesToMSRP: s.toMSRP.Load(), MessagesToSIP: s.toSIP.Load(),
	}
	if in.State == "ended" {
		in.State = "ending"
	}
	if s.ms != nil {
		in.MSRPSessionID = s.ms.ID()
		in.MSRPPeerPath = msrp.FormatPath(s.ms.PeerPath())
	}
	return in
}

// seenAt turns lastMessage or lastSend into the time the API shows: the zero time while it still holds the
// session's creation (newSession starts both timers there, and nothing has touched it since), since that is no
// MESSAGE or SEND at all; every touch stores a later time.
func seenAt(unixNano int64, created time.Time) time.Time {
	if unixNano == created.UnixNano() {
		return time.Time{}
	}
	return time.Unix(0, unixNano)
}

// Sessions lists every session, ordered by key.
func (g *Gateway) Sessions() []SessionInfo {
	var out []SessionInfo
	g.table.Range(func(s *Session) bool {
		out = append(out, s.info())
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Session returns one session by key.
func (g *Gateway) Session(key string) (SessionInfo, bool) {
	s := g.table.Get(key)
	if s == nil {
		return SessionInfo{}, false
	}
	return s.info(), true
}

// EndSession ends a session by key as an operator asked (SPEC §7): BYE (or CANCEL while it is being set up).
// Like the peer's BYE, it first waits up to byeGrace for the answers to SENDs in flight, new MESSAGEs for the
// key going to a new session meanwhile: a message the peer got is not reported failed, and sent again.
func (g *Gateway) EndSession(key string) bool {
	s := g.table.Get(key)
	if s == nil {
		return false
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if !g.draining.Load() { // draining, what the session holds fails at once, with 503 (SPEC §3.3)
		s.awaitAnswers(byeGrace)
	}
	g.endSession(s, "admin", outcomeSessionEnded, true)
	return true
}

// Stats are the gateway's gauges.
type Stats struct {
	SessionsByState map[string]int
	Queued          int
	MSRPConns       int
}

// Stats reads the gauges.
func (g *Gateway) Stats() Stats {
	st := Stats{SessionsByState: map[string]int{"setting-up": 0, "up": 0, "ending": 0}}
	g.table.Range(func(s *Session) bool {
		name := s.state().String()
		if name == "ended" {
			name = "ending"
		}
		st.SessionsByState[name]++
		st.Queued += int(s.queued.Load())
		return true
	})
	st.Queued += g.out.pending()
	if g.msrp != nil {
		st.MSRPConns = g.msrp.NumConns()
	}
	return st
}

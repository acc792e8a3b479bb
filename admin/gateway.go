package admin

import "time"

// Session states as the admin API reports them (SPEC §7).
const (
	StateSettingUp = "setting-up"
	StateUp        = "up"
	StateEnding    = "ending"
)

// Session is one gateway session as the admin API shows it. The JSON field names are the API contract.
type Session struct {
	Key            string    `json:"key"`
	State          string    `json:"state"`  // setting-up | up | ending
	Origin         string    `json:"origin"` // message | invite
	MsgSideFrom    string    `json:"msg_side_from"`
	MsgSideTo      string    `json:"msg_side_to"`
	MsgSideRURI    string    `json:"msg_side_ruri"`
	MSRPSessionID  string    `json:"msrp_session_id"`
	MSRPPeerPath   string    `json:"msrp_peer_path"`
	CallID         string    `json:"call_id"`
	Created        time.Time `json:"created"`
	LastMessage    time.Time `json:"last_message"` // last MESSAGE from the page-mode side
	LastSend       time.Time `json:"last_send"`    // last SEND from the session-mode side
	Queued         int       `json:"queued"`
	MessagesToMSRP uint64    `json:"messages_to_msrp"`
	MessagesToSIP  uint64    `json:"messages_to_sip"`
}

// Stats are the gateway's gauges, read at scrape time.
type Stats struct {
	SessionsByState map[string]int // keys: setting-up, up, ending (absent ones are reported as 0)
	Queued          int            // messages queued in total
	MSRPConns       int            // open MSRP connections
}

// Gateway is what the admin surface needs from the gateway. The gateway package satisfies it; tests use a fake.
type Gateway interface {
	// Sessions returns a snapshot of every session.
	Sessions() []Session
	// Session returns one session by its correlation key.
	Session(key string) (Session, bool)
	// EndSession ends a session with BYE; false if there is no session with that key.
	EndSession(key string) bool
	// Drain starts a graceful drain (idempotent) and returns at once.
	Drain()
	// Ready reports whether the listeners are up and the gateway is not draining.
	Ready() bool
	// Stats returns the current gauges.
	Stats() Stats
}

// Package event defines what the gateway reports about sessions and messages, and the Sink interface through
// which metrics, webhooks and logs receive it. The gateway publishes; it never knows who listens.
package event

import "time"

// Kind names an event. The webhook names of SPEC §5/§7 are the string values.
type Kind string

// Event kinds.
const (
	SessionStarted   Kind = "session_started"   // a gateway session is up (Duration = setup time)
	SessionEnded     Kind = "session_ended"     // a gateway session ended (Reason says why)
	SetupFailed      Kind = "setup_failed"      // the reference's E_MSRP_GW_SETUP_FAILED
	MessageDelivered Kind = "message_delivered" // a message reached the other side (Duration = latency)
	MessageFailed    Kind = "message_failed"    // a message failed and the failure was reported
	MessageDropped   Kind = "message_dropped"   // a control payload (isComposing, IMDN, bodiless) not forwarded, or a refused message with nobody to tell
	RequestRefused   Kind = "request_refused"   // a request refused before it became a message (403 untrusted, 503 overload, 400 bad input, ...)
)

// Direction of a message through the gateway.
type Direction string

// Directions.
const (
	ToMSRP Direction = "to_msrp" // page-mode MESSAGE -> MSRP SEND
	ToSIP  Direction = "to_sip"  // MSRP SEND -> page-mode MESSAGE
)

// Event is one thing that happened. Fields that do not apply to a kind are zero.
type Event struct {
	Kind          Kind          `json:"event"`
	Time          time.Time     `json:"time"`
	Key           string        `json:"key,omitempty"`
	Origin        string        `json:"origin,omitempty"` // "message" or "invite"
	FromURI       string        `json:"from_uri,omitempty"`
	ToURI         string        `json:"to_uri,omitempty"`
	RURI          string        `json:"ruri,omitempty"`
	CallID        string        `json:"call_id,omitempty"`
	MSRPSessionID string        `json:"msrp_session_id,omitempty"`
	Direction     Direction     `json:"direction,omitempty"`
	Code          int           `json:"code,omitempty"`
	Reason        string        `json:"reason,omitempty"`
	Duration      time.Duration `json:"-"`
}

// Sink receives events. Publish must not block: a slow consumer queues or drops, and counts what it dropped.
type Sink interface {
	Publish(e Event)
}

// Sinks fans an event out to several sinks.
type Sinks []Sink

// Publish implements Sink.
func (s Sinks) Publish(e Event) {
	for _, k := range s {
		k.Publish(e)
	}
}

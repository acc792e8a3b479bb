package sdp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Parse and SplitBody wrap them with the detail of what was wrong, so a gateway can branch
// with errors.Is (a 488 for an unusable offer, a late offer for ErrNoSDP) and still put the detail in a
// Warning header.
var (
	// ErrMalformed: the body is not SDP at all, or pion/sdp refuses it even after normalisation.
	ErrMalformed = errors.New("malformed SDP")
	// ErrNoMessageMedia: no m=message line with proto TCP/MSRP or TCP/TLS/MSRP, a non-zero port and format "*".
	ErrNoMessageMedia = errors.New("no usable m=message media")
	// ErrNoPath: the chosen m=message has no a=path (RFC 4975 §8.2 makes it mandatory).
	ErrNoPath = errors.New("no a=path attribute")
	// ErrNoAcceptTypes: the chosen m=message has no (or an empty) a=accept-types (RFC 4975 §8.6).
	ErrNoAcceptTypes = errors.New("no a=accept-types attribute")
	// ErrNoSDP: a SIP body carries no application/sdp (an INVITE without an offer, or a multipart body
	// without an SDP part).
	ErrNoSDP = errors.New("no application/sdp body")
)

// RemovedError is Parse's error for a body whose MSRP stream is offered on port 0 and that has no usable one
// besides: RFC 4975 §8.1 rejects a stream that way, RFC 3264 §8.2 removes one from a session. It wraps
// ErrNoMessageMedia, so a first offer saying so is refused as any without usable media; a re-offer saying so
// ends the chat, and its answer marks the stream port 0 too, in the place MLines and Index give it.
type RemovedError struct {
	MLines []string // the body's m= lines, in order
	Index  int      // the position of the removed m=message line among them
}

func (e *RemovedError) Error() string {
	return fmt.Sprintf("%v: the m=message line (m= line %d of %d) has port 0", ErrNoMessageMedia, e.Index+1, len(e.MLines))
}

func (e *RemovedError) Unwrap() error { return ErrNoMessageMedia }

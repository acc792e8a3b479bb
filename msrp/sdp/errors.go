package sdp

import "errors"

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

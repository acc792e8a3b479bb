package sdp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	psdp "github.com/pion/sdp/v3"
)

// The MSRP protos of RFC 4975 §8.1.
const (
	protoTCP = "TCP/MSRP"
	protoTLS = "TCP/TLS/MSRP"
)

// Values of Media.Direction (RFC 4566 §6, RFC 4975 §8.9).
const (
	SendRecv = "sendrecv"
	SendOnly = "sendonly"
	RecvOnly = "recvonly"
	Inactive = "inactive"
)

// AnswerDirection is the direction an answer gives the media of an offer saying offered (RFC 3264 §6.1):
// sendonly is answered recvonly, recvonly sendonly, inactive inactive, anything else sendrecv.
func AnswerDirection(offered string) string {
	switch offered {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

// Receives reports whether the side m describes takes messages: sendonly and inactive say it does not. RFC
// 4975 §8.9: that restricts SENDs of regular content only; REPORTs and control payloads (IMDNs) go regardless.
func (m *Media) Receives() bool { return m.Direction != SendOnly && m.Direction != Inactive }

// Sends reports whether the side m describes sends messages: recvonly and inactive say it does not.
func (m *Media) Sends() bool { return m.Direction != RecvOnly && m.Direction != Inactive }

// Values of Media.Setup (RFC 6135, RFC 4145).
const (
	SetupActive  = "active"
	SetupPassive = "passive"
	SetupActPass = "actpass"
)

// Media is the MSRP media description of an SDP body (RFC 4975 §8, RFC 6135, RFC 6714).
type Media struct {
	Secure             bool     // TCP/TLS/MSRP (msrps) instead of TCP/MSRP
	Host               string   // c= address (IP4/IP6); the media-level c= wins over the session-level one
	Port               int      // m= port
	Path               []string // a=path URIs, verbatim, in order (parsing them is the msrp package's job)
	AcceptTypes        []string // a=accept-types
	AcceptWrappedTypes []string // a=accept-wrapped-types
	MaxSize            int64    // a=max-size, 0 = absent (or not a non-negative number)
	Setup              string   // a=setup: "active", "passive", "actpass", or "" when absent ("holdconn" -> "")
	Fingerprints       []string // a=fingerprint values verbatim ("SHA-256 AB:CD:..."); RFC 8122 allows several
	Direction          string   // sendrecv (default) / sendonly / recvonly / inactive
	CEMA               bool     // a=msrp-cema present
	FileSelector       string   // a=file-selector (RFC 5547): the session transfers a file, it is no chat
	Time               string   // the body's t= value, "<start> <stop>", "" for "0 0" (unbounded, what Marshal writes
	// when empty); an answer copies the offer's (RFC 3264 §6: the time of a session cannot be negotiated)

	// MLines and Index place the m=message line among the other m= lines of an offer (RFC 3264 §6: an
	// answer has exactly the offer's m= lines, in its order). Parse sets MLines, when the body has more than
	// one m= line, to their values in order, and Index to this one's position among them. Marshal, given
	// them (those of the offer it answers), writes our m=message block at Index and every other line
	// rejected, with port 0; without them, our m=message line alone.
	MLines []string
	Index  int
}

// Parse finds the first usable m=message line (proto TCP/MSRP or TCP/TLS/MSRP, port != 0, format "*") and
// returns it.
//
// It tolerates what real peers send: a missing final CRLF, LF-only line endings, a space after the
// attribute colon, trailing spaces, abridged bodies without v=/o=/s=/t=, attributes at session level (c=,
// and a= lines the media level does not carry), unknown attributes (a=connection:new is one, RFC 6135 §4.4
// says to ignore it) and other media lines before it. Errors wrap a sentinel so a gateway can answer 488
// with a Warning saying why: ErrMalformed (not SDP at all, or pion/sdp refuses it even after
// normalisation), ErrNoMessageMedia, ErrNoPath, ErrNoAcceptTypes.
func Parse(body []byte) (*Media, error) {
	n, err := normalise(body)
	if err != nil {
		return nil, err
	}
	var sd psdp.SessionDescription
	if err := sd.UnmarshalString(n.text); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for i, md := range sd.MediaDescriptions {
		if !usable(md) {
			continue
		}
		m := &Media{
			Secure:    slices.Contains(md.MediaName.Protos, "TLS"),
			Port:      md.MediaName.Port.Value,
			Direction: SendRecv,
		}
		if len(sd.TimeDescriptions) > 0 && sd.TimeDescriptions[0].Timing != (psdp.Timing{}) {
			td := sd.TimeDescriptions[0].Timing
			m.Time = strconv.FormatUint(td.StartTime, 10) + " " + strconv.FormatUint(td.StopTime, 10)
		}
		if len(n.mValues) > 1 {
			m.MLines, m.Index = n.mValues, n.index[i]
		}
		switch {
		case md.ConnectionInformation != nil && md.ConnectionInformation.Address != nil:
			m.Host = md.ConnectionInformation.Address.Address
		case sd.ConnectionInformation != nil && sd.ConnectionInformation.Address != nil:
			m.Host = sd.ConnectionInformation.Address.Address
		}
		said := m.apply(md.Attributes, 0)
		m.apply(sd.Attributes, said)
		if len(m.Path) == 0 {
			return nil, fmt.Errorf("%w: m=message on port %d", ErrNoPath, m.Port)
		}
		if len(m.AcceptTypes) == 0 {
			return nil, fmt.Errorf("%w: m=message on port %d", ErrNoAcceptTypes, m.Port)
		}
		return m, nil
	}
	for i, md := range sd.MediaDescriptions {
		if mn := md.MediaName; mn.Media == "message" && mn.Port.Value == 0 {
			return nil, &RemovedError{MLines: n.mValues, Index: n.index[i]}
		}
	}
	return nil, fmt.Errorf("%w: %d m= line(s), none is message with TCP/MSRP or TCP/TLS/MSRP, a non-zero port and format *",
		ErrNoMessageMedia, n.mLines)
}

// usable reports whether md is MSRP media we can take part in: RFC 4975 §8.1 says port 0 rejects the
// stream and the format list is the single "*".
func usable(md *psdp.MediaDescription) bool {
	mn := md.MediaName
	return mn.Media == "message" && mn.Port.Value != 0 && len(mn.Formats) == 1 && mn.Formats[0] == "*"
}

// attrKind is a bit per attribute Media reads, so session-level attributes fill only what the media level
// left unsaid.
type attrKind uint16

const (
	kindPath attrKind = 1 << iota
	kindAccept
	kindWrapped
	kindMaxSize
	kindSetup
	kindFingerprint
	kindDirection
	kindCEMA
	kindFileSelector
)

// apply copies into m the attributes of attrs whose kind is not in skip, and returns the kinds it found.
// Repeated a=path / a=accept-types lines are concatenated rather than letting the last one win, because
// dropping URIs or types a peer did send would be the worse mistake.
func (m *Media) apply(attrs []psdp.Attribute, skip attrKind) attrKind {
	var found attrKind
	for _, a := range attrs {
		// Trimming here is what makes "a=accept-types: message/cpim" (RFC 4976 §11's own example) work.
		key := strings.ToLower(strings.TrimSpace(a.Key))
		val := strings.TrimSpace(a.Value)
		var k attrKind
		switch key {
		case "path":
			k = kindPath
		case "accept-types":
			k = kindAccept
		case "accept-wrapped-types":
			k = kindWrapped
		case "max-size":
			k = kindMaxSize
		case "setup":
			k = kindSetup
		case "fingerprint":
			k = kindFingerprint
		case SendRecv, SendOnly, RecvOnly, Inactive:
			k = kindDirection
		case "msrp-cema":
			k = kindCEMA
		case "file-selector":
			k = kindFileSelector
		default:
			continue
		}
		if skip&k != 0 {
			continue
		}
		found |= k
		switch k {
		case kindPath:
			m.Path = append(m.Path, strings.Fields(val)...)
		case kindAccept:
			m.AcceptTypes = append(m.AcceptTypes, strings.Fields(val)...)
		case kindWrapped:
			m.AcceptWrappedTypes = append(m.AcceptWrappedTypes, strings.Fields(val)...)
		case kindMaxSize:
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				m.MaxSize = n
			}
		case kindSetup:
			switch s := strings.ToLower(val); s {
			case SetupActive, SetupPassive, SetupActPass:
				m.Setup = s
			default: // holdconn, or garbage: RFC 6135 §4.2.1 says treat it as absent
				m.Setup = ""
			}
		case kindFingerprint:
			m.Fingerprints = append(m.Fingerprints, val)
		case kindDirection:
			m.Direction = key
		case kindCEMA:
			m.CEMA = true
		case kindFileSelector:
			m.FileSelector = val
		}
	}
	return found
}

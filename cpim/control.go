package cpim

import "strings"

// Content types of the control payloads of SPEC §4.
const (
	IsComposingType = "application/im-iscomposing+xml" // RFC 3994
	IMDNType        = "message/imdn+xml"               // RFC 5438
)

// IsControl reports whether a message is a control payload rather than chat text (SPEC §4): an isComposing
// indication, an IMDN (by its type, or by Content-Disposition: notification, which is how RFC 5438 §9 says
// to recognise one), or a bodiless SEND, which has no content type at all — an empty contentType counts as
// control. Pass the content type and MIME headers of the innermost entity: for CPIM, after unwrapping
// (Message.IsControl does that); for a plain SEND or MESSAGE, its own Content-Type and no headers.
func IsControl(contentType string, headers []Header) bool {
	mt := mediaType(contentType)
	if mt == "" || strings.EqualFold(mt, IsComposingType) || strings.EqualFold(mt, IMDNType) {
		return true
	}
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Content-Disposition") {
			disp, _, _ := strings.Cut(h.Value, ";")
			if strings.EqualFold(strings.TrimSpace(disp), "notification") {
				return true
			}
		}
	}
	return false
}

// IsControl reports whether the encapsulated entity of m is a control payload (see the IsControl function).
// An entity with a body but no Content-Type is text/plain by the MIME default (RFC 2045 §5.2), not control.
func (m *Message) IsControl() bool {
	return IsControl(m.EntityType(), m.ContentHeaders)
}

package cpim

import (
	"crypto/rand"
	"strings"
	"time"
)

// dateTimeLayout is RFC 3339 with milliseconds, as RCS clients write DateTime.
const dateTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// WrapOptions says how Wrap builds the CPIM headers.
type WrapOptions struct {
	From, To string    // URIs; rendered "<uri>" (a value that already has <...> is used as it is)
	Now      time.Time // DateTime; the zero time means time.Now()
	// IMDN adds the IMDN headers: NS: imdn <urn:ietf:params:imdn>, imdn.Message-ID and, when Disposition is
	// not empty, imdn.Disposition-Notification. Setting IMDNMessageID or Disposition implies it.
	IMDN          bool
	IMDNMessageID string   // "" = a fresh one with 128 random bits (RFC 5438 §6.3 asks for at least 64)
	Disposition   []string // e.g. PositiveDelivery, NegativeDelivery
}

// Wrap builds a CPIM document around a plain message, as the gateway sends it towards RCS peers: From and To,
// DateTime (RFC 3339), the IMDN headers when asked for, and the encapsulated entity with its Content-Type
// ("text/plain;charset=UTF-8" when contentType is empty) and body (not copied). An IMDN (message/imdn+xml)
// also gets Content-Disposition: notification, which is how its recipient tells it from an IM (RFC 5438
// §7.2.1.1, §9), and always its own imdn.Message-ID (§7.2.1); an IMDN never asks for IMDNs, so
// opts.Disposition should be empty for one.
func Wrap(contentType string, body []byte, opts WrapOptions) *Message {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if contentType == "" {
		contentType = "text/plain;charset=UTF-8"
	}
	m := &Message{
		Headers:        make([]Header, 0, 6),
		ContentHeaders: []Header{{Name: "Content-Type", Value: contentType}},
		Body:           body,
	}
	imdn := strings.EqualFold(mediaType(contentType), IMDNType)
	if imdn {
		m.ContentHeaders = append(m.ContentHeaders, Header{Name: "Content-Disposition", Value: "notification"})
	}
	m.Headers = append(m.Headers,
		Header{Name: "From", Value: angle(opts.From)},
		Header{Name: "To", Value: angle(opts.To)},
		Header{Name: "DateTime", Value: now.Format(dateTimeLayout)},
	)
	if imdn || opts.IMDN || opts.IMDNMessageID != "" || len(opts.Disposition) > 0 {
		id := opts.IMDNMessageID
		if id == "" {
			id = NewMessageID()
		}
		m.Headers = append(m.Headers,
			Header{Name: "NS", Value: "imdn <" + IMDNNamespace + ">"},
			Header{Name: "imdn.Message-ID", Value: id},
		)
		if len(opts.Disposition) > 0 {
			m.Headers = append(m.Headers, Header{Name: "imdn.Disposition-Notification", Value: strings.Join(opts.Disposition, ", ")})
		}
	}
	return m
}

// NewMessageID returns a fresh imdn.Message-ID: 128 random bits as 26 base32 characters, a CPIM Token.
func NewMessageID() string { return rand.Text() }

// angle renders a URI as a CPIM From/To value.
func angle(uri string) string {
	if strings.ContainsRune(uri, '<') {
		return uri
	}
	return "<" + uri + ">"
}

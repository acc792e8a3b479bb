package cpim

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
)

// maxNotificationSize bounds ParseNotification's input; an IMDN is a few hundred bytes.
const maxNotificationSize = 64 << 10

// Kinds of notification (RFC 5438 §5) and the statuses each may carry.
const (
	KindDelivery   = "delivery"
	KindDisplay    = "display"
	KindProcessing = "processing"

	StatusDelivered = "delivered" // delivery
	StatusFailed    = "failed"    // delivery
	StatusForbidden = "forbidden" // any kind
	StatusError     = "error"     // any kind
	StatusDisplayed = "displayed" // display
	StatusProcessed = "processed" // processing
	StatusStored    = "stored"    // processing
)

// Notification is a message/imdn+xml body (RFC 5438 §7.2.1, §11.1).
type Notification struct {
	MessageID         string // the IM's imdn.Message-ID
	DateTime          string // the IM's DateTime
	RecipientURI      string
	OriginalRecipient string
	Kind              string // "delivery", "display", "processing"
	Status            string // "delivered", "failed", "forbidden", "error", "displayed", "processed", ...
}

type xmlIMDN struct {
	XMLName           xml.Name
	MessageID         string     `xml:"message-id"`
	DateTime          string     `xml:"datetime"`
	RecipientURI      string     `xml:"recipient-uri"`
	OriginalRecipient string     `xml:"original-recipient-uri"`
	Delivery          *xmlStatus `xml:"delivery-notification"`
	Display           *xmlStatus `xml:"display-notification"`
	Processing        *xmlStatus `xml:"processing-notification"`
}

type xmlStatus struct {
	Status *struct {
		Values []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"status"`
}

// ParseNotification parses a message/imdn+xml body. The root must be <imdn> in the IMDN namespace (or in
// none, as sloppy senders write it), with a <message-id> and exactly one of <delivery-notification>,
// <display-notification>, <processing-notification> holding a <status> with an element in it. Unknown
// elements (RCS extensions) are ignored. Errors wrap ErrMalformed.
func ParseNotification(body []byte) (*Notification, error) {
	if len(body) > maxNotificationSize {
		return nil, fmt.Errorf("%w: IMDN body of %d bytes exceeds %d", ErrMalformed, len(body), maxNotificationSize)
	}
	var x xmlIMDN
	if err := xml.Unmarshal(body, &x); err != nil {
		return nil, fmt.Errorf("%w: IMDN XML: %v", ErrMalformed, err)
	}
	if x.XMLName.Local != "imdn" || (x.XMLName.Space != "" && x.XMLName.Space != IMDNXMLNamespace) {
		return nil, fmt.Errorf("%w: IMDN root element is {%s}%s, want {%s}imdn", ErrMalformed,
			clip(x.XMLName.Space), clip(x.XMLName.Local), IMDNXMLNamespace)
	}
	n := &Notification{
		MessageID:         strings.TrimSpace(x.MessageID),
		DateTime:          strings.TrimSpace(x.DateTime),
		RecipientURI:      strings.TrimSpace(x.RecipientURI),
		OriginalRecipient: strings.TrimSpace(x.OriginalRecipient),
	}
	if n.MessageID == "" {
		return nil, fmt.Errorf("%w: IMDN without <message-id>", ErrMalformed)
	}
	var st *xmlStatus
	kinds := 0
	for _, k := range []struct {
		kind string
		st   *xmlStatus
	}{{KindDelivery, x.Delivery}, {KindDisplay, x.Display}, {KindProcessing, x.Processing}} {
		if k.st != nil {
			kinds++
			n.Kind, st = k.kind, k.st
		}
	}
	if kinds != 1 {
		return nil, fmt.Errorf("%w: IMDN for message-id %q has %d notification elements, want 1", ErrMalformed, clip(n.MessageID), kinds)
	}
	if st.Status == nil || len(st.Status.Values) == 0 {
		return nil, fmt.Errorf("%w: IMDN %s-notification without a status", ErrMalformed, n.Kind)
	}
	n.Status = st.Status.Values[0].XMLName.Local
	return n, nil
}

// Marshal renders the notification as a message/imdn+xml body. A Kind or Status that is not a plain XML
// name (ASCII letters, digits, '-', '_', '.', not starting with a digit, '-' or '.') cannot be an element
// name: it is rendered as the kind "delivery" or the status "error" instead.
func (n *Notification) Marshal() []byte {
	kind, status := n.Kind, n.Status
	if !isName(kind) {
		kind = KindDelivery
	}
	if !isName(status) {
		status = StatusError
	}
	var b bytes.Buffer
	b.Grow(256 + len(n.MessageID) + len(n.DateTime) + len(n.RecipientURI) + len(n.OriginalRecipient))
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\r\n")
	b.WriteString(`<imdn xmlns="` + IMDNXMLNamespace + `">` + "\r\n")
	element(&b, "message-id", n.MessageID)
	element(&b, "datetime", n.DateTime)
	if n.RecipientURI != "" {
		element(&b, "recipient-uri", n.RecipientURI)
	}
	if n.OriginalRecipient != "" {
		element(&b, "original-recipient-uri", n.OriginalRecipient)
	}
	fmt.Fprintf(&b, "<%s-notification><status><%s/></status></%s-notification>\r\n", kind, status, kind)
	b.WriteString("</imdn>\r\n")
	return b.Bytes()
}

func element(b *bytes.Buffer, name, text string) {
	b.WriteString("<" + name + ">")
	_ = xml.EscapeText(b, []byte(text)) // a bytes.Buffer does not fail
	b.WriteString("</" + name + ">\r\n")
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == 0 || (c < '0' || c > '9') && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

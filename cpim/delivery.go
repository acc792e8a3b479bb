package cpim

import (
	"fmt"
	"time"
)

// NewDeliveryIMDN builds the delivery notification for the IM orig, wrapped in CPIM, as the gateway sends it
// back into the MSRP session on the page-mode user's behalf (RFC 5438 §7.2.1): CPIM From = orig's To, To =
// orig's From, DateTime = now, NS imdn, a fresh imdn.Message-ID, imdn.IMDN-Route copied from orig's
// imdn.IMDN-Record-Route headers in order (§6.6), no Disposition-Notification (an IMDN never asks for one);
// the entity is Content-Type message/imdn+xml, Content-Disposition notification, and the XML names orig's
// imdn.Message-ID and DateTime.
//
// status is a delivery status: "delivered", "failed", "forbidden" or "error". Whether orig asked for the
// notification (orig.Wants(PositiveDelivery) / NegativeDelivery) is the caller's decision. ErrNoMessageID
// when orig has no imdn.Message-ID.
func NewDeliveryIMDN(orig *Message, status string, now time.Time) (*Message, error) {
	if orig == nil {
		return nil, fmt.Errorf("cpim: no message to notify about")
	}
	switch status {
	case StatusDelivered, StatusFailed, StatusForbidden, StatusError:
	default:
		return nil, fmt.Errorf("cpim: %q is not a delivery status (delivered, failed, forbidden, error)", status)
	}
	id := orig.IMDNMessageID()
	if id == "" {
		return nil, fmt.Errorf("%w: cannot build an IMDN for a message from %q without one", ErrNoMessageID, orig.From())
	}
	from, to := orig.To(), orig.From()
	if from == "" || to == "" {
		return nil, fmt.Errorf("%w: message %q lacks From or To, an IMDN needs both", ErrMalformed, id)
	}
	if now.IsZero() {
		now = time.Now()
	}
	n := Notification{
		MessageID:    id,
		DateTime:     orig.Get("DateTime"),
		RecipientURI: from,
		Kind:         KindDelivery,
		Status:       status,
	}
	if n.DateTime == "" { // RFC 5438 makes it mandatory; without it, say when we knew
		n.DateTime = now.Format(dateTimeLayout)
	}
	if ot := orig.imdnValues("Original-To"); len(ot) > 0 {
		n.OriginalRecipient = uriOf(ot[0])
	}
	m := Wrap(IMDNType, n.Marshal(), WrapOptions{From: from, To: to, Now: now, IMDN: true})
	for _, route := range orig.imdnValues("IMDN-Record-Route") {
		m.Headers = append(m.Headers, Header{Name: "imdn.IMDN-Route", Value: route})
	}
	return m, nil
}

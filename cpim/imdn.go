package cpim

import "strings"

// The IMDN namespaces of RFC 5438: the CPIM header namespace (§6.1) and the XML namespace of
// message/imdn+xml (§11.1).
const (
	IMDNNamespace    = "urn:ietf:params:imdn"
	IMDNXMLNamespace = "urn:ietf:params:xml:ns:imdn"
)

// Disposition-Notification values of RFC 5438 §7.1.1.3.
const (
	PositiveDelivery = "positive-delivery"
	NegativeDelivery = "negative-delivery"
	Processing       = "processing"
	Display          = "display"
)

// imdnPrefixes returns the prefixes the document declares for the IMDN namespace with NS headers ("NS:
// imdn <urn:ietf:params:imdn>"; RFC 5438 §6.1 says any prefix must be accepted). When no NS names the IMDN
// namespace, it falls back to the conventional "imdn" — unless an NS gives that prefix to another
// namespace — because some senders use imdn.* headers without declaring them.
func (m *Message) imdnPrefixes() []string {
	var prefixes []string
	imdnTaken := false
	for _, h := range m.Headers {
		if h.Name != "NS" {
			continue
		}
		prefix, uri := splitNS(h.Value)
		if strings.EqualFold(uri, IMDNNamespace) {
			if prefix != "" {
				prefixes = append(prefixes, prefix)
			}
		} else if prefix == "imdn" {
			imdnTaken = true
		}
	}
	if len(prefixes) == 0 && !imdnTaken {
		prefixes = append(prefixes, "imdn")
	}
	return prefixes
}

// splitNS splits an NS header value "[prefix] <uri>".
func splitNS(v string) (prefix, uri string) {
	i := strings.IndexByte(v, '<')
	if i < 0 {
		return "", ""
	}
	j := strings.IndexByte(v[i:], '>')
	if j < 0 {
		return "", ""
	}
	return strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+1 : i+j])
}

// imdnValues returns, in document order, the values of every IMDN header with the local name given, under
// any declared prefix.
func (m *Message) imdnValues(local string) []string {
	prefixes := m.imdnPrefixes()
	var vals []string
	for _, h := range m.Headers {
		p, l, ok := strings.Cut(h.Name, ".")
		if !ok || l != local {
			continue
		}
		for _, want := range prefixes {
			if p == want {
				vals = append(vals, h.Value)
				break
			}
		}
	}
	return vals
}

// IMDNMessageID returns the imdn.Message-ID of the message (RFC 5438 §6.3), whatever prefix the sender
// declared for the IMDN namespace; "" when there is none.
func (m *Message) IMDNMessageID() string {
	if v := m.imdnValues("Message-ID"); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// DispositionNotification returns the notifications the sender asks for (RFC 5438 §7.1.1.3), lower case and
// without parameters, e.g. ["positive-delivery", "display"]; nil when it asks for none.
func (m *Message) DispositionNotification() []string {
	var out []string
	for _, v := range m.imdnValues("Disposition-Notification") {
		for item := range strings.SplitSeq(v, ",") {
			if i := strings.IndexByte(item, ';'); i >= 0 {
				item = item[:i]
			}
			if item = strings.ToLower(strings.TrimSpace(item)); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// Wants reports whether the sender asked for the disposition notification given (e.g. PositiveDelivery).
func (m *Message) Wants(disposition string) bool {
	for _, d := range m.DispositionNotification() {
		if strings.EqualFold(d, disposition) {
			return true
		}
	}
	return false
}

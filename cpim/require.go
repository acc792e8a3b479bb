package cpim

import "strings"

// HeaderNamespace is the namespace of CPIM's own headers (RFC 3862 §3.3), named without a prefix.
const HeaderNamespace = "urn:ietf:params:cpim-headers:"

// implemented are the headers this package gives meaning to, by namespace: RFC 3862's own and RFC 5438's.
var implemented = map[string][]string{
	HeaderNamespace: {"From", "To", "cc", "DateTime", "Subject", "NS", "Require"},
	IMDNNamespace:   {"Message-ID", "Disposition-Notification", "IMDN-Record-Route", "IMDN-Route", "Original-To"},
}

// Unsupported returns the header names the message's Require headers list (RFC 3862 §4.7: headers whose
// meaning the sender requires its recipient to understand) that this package does not implement, as
// written, in order; nil when there are none. A prefixed name is resolved through the message's NS headers;
// one whose prefix no NS declares is unsupported (the undeclared "imdn" prefix excepted, as in
// IMDNMessageID). A recipient that unwraps the message must not act as if it had understood these.
func (m *Message) Unsupported() []string {
	var out []string
	for _, h := range m.Headers {
		if h.Name != "Require" {
			continue
		}
		for name := range strings.SplitSeq(h.Value, ",") {
			if name = strings.TrimSpace(name); name != "" && !m.implements(name) {
				out = append(out, name)
			}
		}
	}
	return out
}

// implements reports whether a header name, resolved to its namespace, is one this package implements.
func (m *Message) implements(name string) bool {
	prefix, local, ok := strings.Cut(name, ".")
	if !ok {
		prefix, local = "", name
	}
	ns, declared := m.namespace(prefix)
	switch {
	case declared:
	case prefix == "":
		ns = HeaderNamespace
	case prefix == "imdn":
		ns = IMDNNamespace
	default:
		return false
	}
	for uri, names := range implemented {
		if strings.EqualFold(ns, uri) {
			for _, n := range names {
				if n == local {
					return true
				}
			}
		}
	}
	return false
}

// namespace returns the URI the message's NS headers give prefix ("" for the default namespace).
func (m *Message) namespace(prefix string) (string, bool) {
	for _, h := range m.Headers {
		if h.Name != "NS" {
			continue
		}
		if p, uri := splitNS(h.Value); uri != "" && p == prefix {
			return uri, true
		}
	}
	return "", false
}

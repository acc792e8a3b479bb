package sdp

import (
	"strconv"
	"strings"
)

// Marshal renders a complete SDP body for our side, CRLF line endings:
//
//	v=0
//	o=- <sessID> <version> IN IP4|IP6 <host>
//	s=-
//	c=IN IP4|IP6 <host>
//	t=<Time>                               (0 0 when empty)
//	m=message <port> TCP/MSRP *            (TCP/TLS/MSRP if Secure)
//	a=accept-types:...
//	a=accept-wrapped-types:...             (if any)
//	a=max-size:...                         (if > 0)
//	a=setup:...                            (if set)
//	a=path:...                             (always)
//	a=fingerprint:...                      (one line each)
//	a=sendonly|recvonly|inactive           (if Direction says so; sendrecv is the default and left out)
//	a=msrp-cema                            (if CEMA: set it only when we really connect per RFC 6714)
//
// When m answers an offer with other m= lines (MLines, Index), each of them is written in its place, rejected:
// its media, proto and formats as offered, port 0 (RFC 3264 §6).
//
// An IPv6 Host may be given with or without brackets; an empty Host is rendered as 0.0.0.0.
func (m *Media) Marshal(sessID, version uint64) []byte {
	host := strings.TrimSuffix(strings.TrimPrefix(m.Host, "["), "]")
	if host == "" {
		host = "0.0.0.0"
	}
	addrType := "IP4"
	if strings.Contains(host, ":") {
		addrType = "IP6"
	}
	size := 160 + 2*len(host) + 16*(len(m.AcceptTypes)+len(m.AcceptWrappedTypes)) + 80*len(m.Fingerprints)
	for _, p := range m.Path {
		size += len(p) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, "v=0\r\no=- "...)
	b = strconv.AppendUint(b, sessID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, version, 10)
	b = append(b, " IN "...)
	b = append(b, addrType...)
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, "\r\ns=-\r\nc=IN "...)
	b = append(b, addrType...)
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, "\r\nt="...)
	if m.Time != "" {
		b = append(b, m.Time...)
	} else {
		b = append(b, "0 0"...)
	}
	b = append(b, "\r\n"...)
	rejected := len(m.MLines) > 1 && m.Index >= 0 && m.Index < len(m.MLines)
	if rejected {
		for _, v := range m.MLines[:m.Index] {
			b = appendRejected(b, v)
		}
	}
	b = append(b, "m=message "...)
	b = strconv.AppendInt(b, int64(m.Port), 10)
	if m.Secure {
		b = append(b, " "+protoTLS+" *\r\n"...)
	} else {
		b = append(b, " "+protoTCP+" *\r\n"...)
	}
	b = appendList(b, "a=accept-types:", m.AcceptTypes)
	if len(m.AcceptWrappedTypes) > 0 {
		b = appendList(b, "a=accept-wrapped-types:", m.AcceptWrappedTypes)
	}
	if m.MaxSize > 0 {
		b = append(b, "a=max-size:"...)
		b = strconv.AppendInt(b, m.MaxSize, 10)
		b = append(b, "\r\n"...)
	}
	if m.Setup != "" {
		b = append(b, "a=setup:"...)
		b = append(b, m.Setup...)
		b = append(b, "\r\n"...)
	}
	b = appendList(b, "a=path:", m.Path)
	for _, fp := range m.Fingerprints {
		b = append(b, "a=fingerprint:"...)
		b = append(b, fp...)
		b = append(b, "\r\n"...)
	}
	switch m.Direction {
	case SendOnly, RecvOnly, Inactive:
		b = append(b, "a="...)
		b = append(b, m.Direction...)
		b = append(b, "\r\n"...)
	}
	if m.CEMA {
		b = append(b, "a=msrp-cema\r\n"...)
	}
	if m.FileSelector != "" {
		b = append(b, "a=file-selector:"...)
		b = append(b, m.FileSelector...)
		b = append(b, "\r\n"...)
	}
	if rejected {
		for _, v := range m.MLines[m.Index+1:] {
			b = appendRejected(b, v)
		}
	}
	return b
}

// appendRejected appends the m= line that rejects the offered m= line whose value is v: the same media, proto
// and formats, port 0 (RFC 3264 §6). What an offer leaves out of the line is filled in, so that it stays an
// m= line (RFC 4566 §5.14: media, port, proto and at least one format).
func appendRejected(b []byte, v string) []byte {
	f := strings.Fields(v)
	for len(f) < 4 {
		f = append(f, "*")
	}
	f[1] = "0"
	b = append(b, "m="...)
	b = append(b, strings.Join(f, " ")...)
	return append(b, "\r\n"...)
}

func appendList(b []byte, prefix string, items []string) []byte {
	b = append(b, prefix...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, it...)
	}
	return append(b, "\r\n"...)
}

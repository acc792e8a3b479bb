package gateway

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// sipgo ends a header line only at CRLF: a bare LF, a NUL or any other control character stays inside the
// value (and its URI parser takes them into a URI too). Repeated in a response, or copied into a request the
// gateway makes, such a value ends the header early and starts one the sender chose. So a request with a
// control character other than HTAB in its request line or header section is refused at intake with 400,
// before anything copies it: over UDP from the datagram's bytes (headControl, in takeUDP, before sipgo sees
// it), otherwise from the parsed request (requestControl, in takeFromTransport and before every sipgo
// handler). Responses never repeat a header with one (dropControlHeaders, appendResponse).

// isControl says whether c may not appear inside a header line: any control character but HTAB.
func isControl(c byte) bool { return (c < ' ' && c != '\t') || c == 0x7f }

// headControl is the offset in data, a SIP message, of the first control character (other than HTAB and
// the CRLF ending a line) in its start line and header section; -1 when there is none. It reads only up to
// the empty line: the body may hold anything.
func headControl(data []byte) int {
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !isControl(c) {
			continue
		}
		if c != '\r' || i+1 >= len(data) || data[i+1] != '\n' {
			return i
		}
		i++ // the LF of a CRLF
		if i+2 < len(data) && data[i+1] == '\r' && data[i+2] == '\n' {
			return -1 // the empty line ending the header section
		}
	}
	return -1
}

// controlAt says where data's control character at off is, for a Warning: a part of the request line or
// "header NAME", and what it is, as a code (never the character itself).
func controlAt(data []byte, off int) string {
	start := bytes.LastIndex(data[:off], []byte("\r\n"))
	if start < 0 {
		part := [...]string{"method", "Request-URI", "SIP version"}[min(bytes.Count(data[:off], []byte(" ")), 2)]
		return fmt.Sprintf("control character 0x%02x in the request line's %s", data[off], part)
	}
	line := data[start+2 : off]
	name, _, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(bytes.TrimSpace(name)) == 0 {
		return fmt.Sprintf("control character 0x%02x in a header name", data[off])
	}
	return fmt.Sprintf("control character 0x%02x in header %s", data[off], clip(string(bytes.TrimSpace(name)), maxQuoted))
}

// requestControl says which part of req holds a control character (other than HTAB), or "" when none does.
// It reads the parsed request without allocating: MESSAGEs over TCP and TLS are bulk traffic too.
func requestControl(req *sip.Request) string {
	if c, ok := stringsControl(string(req.Method), req.SipVersion); ok {
		return fmt.Sprintf("control character 0x%02x in the request line", c)
	}
	if c, ok := uriControl(&req.Recipient); ok {
		return fmt.Sprintf("control character 0x%02x in the Request-URI", c)
	}
	for _, h := range req.Headers() {
		if c, ok := stringControl(h.Name()); ok {
			return fmt.Sprintf("control character 0x%02x in a header name", c)
		}
		if c, ok := headerControl(h); ok {
			return fmt.Sprintf("control character 0x%02x in header %s", c, clip(h.Name(), maxQuoted))
		}
	}
	return ""
}

// headerControl is the first control character in h's value, if any.
func headerControl(h sip.Header) (byte, bool) {
	switch h := h.(type) {
	case *sip.FromHeader:
		return addrControl(h.DisplayName, &h.Address, h.Params)
	case *sip.ToHeader:
		return addrControl(h.DisplayName, &h.Address, h.Params)
	case *sip.ContactHeader:
		return addrControl(h.DisplayName, &h.Address, h.Params)
	case *sip.ViaHeader:
		if c, ok := stringsControl(h.ProtocolName, h.ProtocolVersion, h.Transport, h.Host); ok {
			return c, ok
		}
		return paramsControl(h.Params)
	case *sip.CallIDHeader:
		return stringControl(string(*h))
	case *sip.CSeqHeader:
		return stringControl(string(h.MethodName))
	case *sip.ContentTypeHeader:
		return stringControl(string(*h))
	case *sip.ContentLengthHeader, *sip.MaxForwardsHeader:
		return 0, false // numbers
	case *sip.RouteHeader:
		return uriControl(&h.Address)
	case *sip.RecordRouteHeader:
		return uriControl(&h.Address)
	}
	// Any other header (sipgo's generic one keeps the text as it came): its text as sipgo writes it.
	b := headerBuffers.Get().(*bytes.Buffer)
	defer headerBuffers.Put(b)
	b.Reset()
	h.StringWrite(b)
	for _, c := range b.Bytes() {
		if isControl(c) {
			return c, true
		}
	}
	return 0, false
}

var headerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func addrControl(display string, u *sip.Uri, params sip.HeaderParams) (byte, bool) {
	if c, ok := stringControl(display); ok {
		return c, ok
	}
	if c, ok := uriControl(u); ok {
		return c, ok
	}
	return paramsControl(params)
}

func uriControl(u *sip.Uri) (byte, bool) {
	return uriBytes(u, isControl)
}

// uriBytes is the first byte of u's parts for which bad holds, if any.
func uriBytes(u *sip.Uri, bad func(byte) bool) (byte, bool) {
	for _, s := range [...]string{u.Scheme, u.User, u.Password, u.Host, u.Raw()} {
		for i := 0; i < len(s); i++ {
			if bad(s[i]) {
				return s[i], true
			}
		}
	}
	for _, p := range [...]sip.HeaderParams{u.UriParams, u.Headers} {
		for _, kv := range p {
			for _, s := range [...]string{kv.K, kv.V} {
				for i := 0; i < len(s); i++ {
					if bad(s[i]) {
						return s[i], true
					}
				}
			}
		}
	}
	return 0, false
}

func paramsControl(p sip.HeaderParams) (byte, bool) {
	for _, kv := range p {
		if c, ok := stringsControl(kv.K, kv.V); ok {
			return c, ok
		}
	}
	return 0, false
}

func stringsControl(ss ...string) (byte, bool) {
	for _, s := range ss {
		if c, ok := stringControl(s); ok {
			return c, ok
		}
	}
	return 0, false
}

func stringControl(s string) (byte, bool) {
	for i := 0; i < len(s); i++ {
		if isControl(s[i]) {
			return s[i], true
		}
	}
	return 0, false
}

// dropControlHeaders removes from res every header holding a control character: a response to a request
// refused for one would otherwise repeat it (sipgo's NewResponseFromRequest copies Via, From, To, Call-ID
// and CSeq as they were parsed).
func dropControlHeaders(res *sip.Response) {
	all := res.Headers()
	if !slices.ContainsFunc(all, hasControl) {
		return
	}
	all = slices.Clone(all)
	for _, h := range all {
		res.RemoveHeader(h.Name()) // the first of that name: once per header removes them all
	}
	for _, h := range all {
		if !hasControl(h) {
			res.AppendHeader(h)
		}
	}
}

func hasControl(h sip.Header) bool {
	_, ok := headerControl(h)
	return ok
}

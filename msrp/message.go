package msrp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Methods defined by RFC 4975. Other methods are kept in Message.Method so they can be answered 501.
const (
	MethodSend   = "SEND"
	MethodReport = "REPORT"
)

// methodAuth is RFC 4976's: a relay's method, answered 501 here, whose To-Path alone may omit ports.
const methodAuth = "AUTH"

// Canonical header names. The reader maps any case to these, so comparing with == works on parsed messages.
const (
	HdrToPath            = "To-Path"
	HdrFromPath          = "From-Path"
	HdrMessageID         = "Message-ID"
	HdrByteRange         = "Byte-Range"
	HdrSuccessReport     = "Success-Report"
	HdrFailureReport     = "Failure-Report"
	HdrStatus            = "Status"
	HdrContentType       = "Content-Type"
	HdrContentID         = "Content-ID"
	HdrContentDesc       = "Content-Description"
	HdrContentDisp       = "Content-Disposition"
	HdrUsePath           = "Use-Path"
	HdrWWWAuthenticate   = "WWW-Authenticate"
	HdrAuthorization     = "Authorization"
	HdrAuthenticationInf = "Authentication-Info"
	HdrExpires           = "Expires"
	HdrMinExpires        = "Min-Expires"
	HdrMaxExpires        = "Max-Expires"
)

var knownHeaders = [...]string{HdrToPath, HdrFromPath, HdrMessageID, HdrByteRange, HdrSuccessReport,
	HdrFailureReport, HdrStatus, HdrContentType, HdrContentID, HdrContentDesc, HdrContentDisp, HdrUsePath,
	HdrWWWAuthenticate, HdrAuthorization, HdrAuthenticationInf, HdrExpires, HdrMinExpires, HdrMaxExpires}

// Header is one header line other than To-Path and From-Path.
type Header struct{ Name, Value string }

// Message is one MSRP frame: a request (SEND, REPORT, or another method) or a response.
type Message struct {
	TransactionID string
	Method        string // "SEND", "REPORT", other (kept so it can be answered 501); "" for a response
	StatusCode    int    // responses only
	Comment       string // responses only
	ToPath        []URI
	FromPath      []URI
	Headers       []Header // every other header in wire order (Message-ID, Byte-Range, ..., Content-Type last)
	Body          []byte   // nil = bodiless request
	Flag          byte     // '$', '+', '#'
}

// ByteRange is the value of a Byte-Range header; End and Total are -1 for '*'.
type ByteRange struct{ Start, End, Total int64 }

// ErrNoHeader is returned by typed accessors when the header is absent and has no default.
var ErrNoHeader = errors.New("msrp: header absent")

// IsRequest reports whether m is a request (it has a method).
func (m *Message) IsRequest() bool { return m.Method != "" }

// Header returns the value of the first header named name (case-insensitive), or "".
// To-Path and From-Path are not in Headers; use the ToPath and FromPath fields.
func (m *Message) Header(name string) string {
	for i := range m.Headers {
		if m.Headers[i].Name == name || strings.EqualFold(m.Headers[i].Name, name) {
			return m.Headers[i].Value
		}
	}
	return ""
}

// SetHeader replaces the first header named name, or adds it (before Content-Type, which stays last).
func (m *Message) SetHeader(name, value string) {
	for i := range m.Headers {
		if strings.EqualFold(m.Headers[i].Name, name) {
			m.Headers[i].Value = value
			return
		}
	}
	n := len(m.Headers)
	if n > 0 && strings.EqualFold(m.Headers[n-1].Name, HdrContentType) && !strings.EqualFold(name, HdrContentType) {
		m.Headers = append(m.Headers, m.Headers[n-1])
		m.Headers[n-1] = Header{name, value}
		return
	}
	m.Headers = append(m.Headers, Header{name, value})
}

// MessageID returns the Message-ID header.
func (m *Message) MessageID() string { return m.Header(HdrMessageID) }

// ContentType returns the Content-Type header.
func (m *Message) ContentType() string { return m.Header(HdrContentType) }

// ByteRange returns the parsed Byte-Range header. When the header is absent it returns ErrNoHeader
// together with 1-*/* (a SEND without Byte-Range is a whole message, RFC 4975 §7.3.1).
func (m *Message) ByteRange() (ByteRange, error) {
	v := m.Header(HdrByteRange)
	if v == "" {
		return ByteRange{1, -1, -1}, ErrNoHeader
	}
	return ParseByteRange(v)
}

// FailureReport returns the Failure-Report value, lower-cased: "no" or "partial" as sent, otherwise "yes", the
// default when it is absent (RFC 4975 §7.1.1). A value outside the grammar ("yes" / "no" / "partial") is read as
// the default too, so the response and the failure REPORT the message gets agree.
func (m *Message) FailureReport() string {
	switch v := lowerASCII(m.Header(HdrFailureReport)); v {
	case "no", "partial":
		return v
	}
	return "yes"
}

// SuccessReport reports whether Success-Report is "yes" (absent = no).
func (m *Message) SuccessReport() bool {
	return strings.EqualFold(m.Header(HdrSuccessReport), "yes")
}

// Status parses a REPORT's "Status: 000 NNN [comment]" header.
func (m *Message) Status() (code int, comment string, err error) {
	v := m.Header(HdrStatus)
	if v == "" {
		return 0, "", fmt.Errorf("%w: Status", ErrNoHeader)
	}
	return ParseStatus(v)
}

// ParseStatus parses a Status header value "NNN NNN [comment]" (namespace, code, comment).
func ParseStatus(v string) (code int, comment string, err error) {
	if len(v) < 7 || v[3] != ' ' || !isDigits(v[:3]) || !isDigits(v[4:7]) || (len(v) > 7 && v[7] != ' ') {
		return 0, "", fmt.Errorf("msrp: malformed Status %q (want \"000 NNN [comment]\")", v)
	}
	if v[:3] != "000" {
		return 0, "", fmt.Errorf("msrp: Status %q: unknown namespace %q", v, v[:3])
	}
	code, _ = atoiSmall(v[4:7])
	if code < 100 {
		// No status class below 1xx: a "000" would read as no status at all, never as a failure.
		return 0, "", fmt.Errorf("msrp: Status %q: code %d is not a status code", v, code)
	}
	if len(v) > 8 {
		comment = v[8:]
	}
	return code, comment, nil
}

// ParseByteRange parses "start-end/total" where end and total may be '*'.
func ParseByteRange(v string) (ByteRange, error) {
	br := ByteRange{End: -1, Total: -1}
	dash := strings.IndexByte(v, '-')
	slash := strings.IndexByte(v, '/')
	if dash <= 0 || slash < dash {
		return br, fmt.Errorf("msrp: malformed Byte-Range %q (want start-end/total)", v)
	}
	var ok bool
	if br.Start, ok = parseRangeNum(v[:dash], false); !ok || br.Start < 1 {
		return br, fmt.Errorf("msrp: Byte-Range %q: bad range-start", v)
	}
	if br.End, ok = parseRangeNum(v[dash+1:slash], true); !ok {
		return br, fmt.Errorf("msrp: Byte-Range %q: bad range-end", v)
	}
	if br.Total, ok = parseRangeNum(v[slash+1:], true); !ok {
		return br, fmt.Errorf("msrp: Byte-Range %q: bad total", v)
	}
	if br.End >= 0 && br.End < br.Start-1 {
		return br, fmt.Errorf("msrp: Byte-Range %q: end before start", v)
	}
	if br.Total >= 0 && (br.End > br.Total || br.Start > br.Total+1) {
		return br, fmt.Errorf("msrp: Byte-Range %q: range beyond total", v)
	}
	return br, nil
}

// parseRangeNum parses up to 18 digits (so it cannot overflow int64), or '*' as -1 when star is allowed.
func parseRangeNum(s string, star bool) (int64, bool) {
	if star && s == "*" {
		return -1, true
	}
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// String formats the range as in the header.
func (br ByteRange) String() string {
	var b [64]byte // three int64s and the separators: the string is the only allocation
	return string(br.appendTo(b[:0]))
}

func (br ByteRange) appendTo(b []byte) []byte {
	b = strconv.AppendInt(b, br.Start, 10)
	b = append(b, '-')
	if br.End < 0 {
		b = append(b, '*')
	} else {
		b = strconv.AppendInt(b, br.End, 10)
	}
	b = append(b, '/')
	if br.Total < 0 {
		return append(b, '*')
	}
	return strconv.AppendInt(b, br.Total, 10)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// canonicalHeader returns the canonical spelling of a known header name, or "" if unknown.
func canonicalHeader(name []byte) string {
	if len(name) == 0 {
		return ""
	}
	// Dispatch on the first letter so the common headers cost one or two comparisons.
	var cands []string
	switch name[0] | 0x20 {
	case 't':
		cands = knownHeaders[0:1]
	case 'f':
		cands = []string{HdrFromPath, HdrFailureReport}
	case 'm':
		cands = []string{HdrMessageID, HdrMinExpires, HdrMaxExpires}
	case 'b':
		cands = knownHeaders[3:4]
	case 's':
		cands = []string{HdrSuccessReport, HdrStatus}
	default:
		cands = knownHeaders[:]
	}
	for _, k := range cands {
		if len(k) == len(name) && equalFoldBytes(name, k) {
			return k
		}
	}
	return ""
}

func equalFoldBytes(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}

// isMIMEHeader reports whether name is a MIME header of the content (RFC 4975 §7.1: Content-* headers).
func isMIMEHeader(name string) bool {
	return len(name) > 8 && strings.EqualFold(name[:8], "Content-")
}

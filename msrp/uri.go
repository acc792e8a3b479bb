package msrp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrBadURI is wrapped by every URI and path parsing error.
var ErrBadURI = errors.New("msrp: malformed URI")

// ErrNoPort is wrapped by the errors about a URI that lacks a port where RFC 4975 requires one: those of
// URI.CheckPort, ParseSDPPath and the Reader (400 to such a request) also wrap ErrBadURI; Session.Connect's,
// for a peer path without one, does not.
var ErrNoPort = errors.New("no port")

// URI is an MSRP URI (RFC 4975 §6):
//
//	msrp[s]://[user@]host[:port][/session-id];transport[;params]
type URI struct {
	Secure    bool   // msrps
	User      string // userinfo, rarely used
	Host      string // as written (IPv6 without brackets)
	Port      int    // 0 when absent (only RFC 4976 AUTH To-Paths may omit it: see CheckPort)
	SessionID string
	Transport string // "tcp", "ws", ... lower-cased
	Params    string // the remaining parameters verbatim, with their leading ';' (e.g. ";foo=bar"); may be ""
}

// ParseURI parses an MSRP URI strictly: scheme msrp or msrps, a host, an optional port, an optional
// session-id and a mandatory transport parameter. The port is optional here because an RFC 4976 AUTH
// To-Path may omit it; where the URI is used decides whether it may: URI.CheckPort for To-Path and From-Path
// URIs, ParseSDPPath for SDP a=path.
func ParseURI(s string) (URI, error) {
	var u URI
	i := strings.Index(s, "://")
	if i < 0 {
		return u, fmt.Errorf("%w %q: no \"://\"", ErrBadURI, s)
	}
	switch scheme := s[:i]; {
	case len(scheme) == 4 && strings.EqualFold(scheme, "msrp"):
	case len(scheme) == 5 && strings.EqualFold(scheme, "msrps"):
		u.Secure = true
	default:
		return u, fmt.Errorf("%w %q: scheme %q is not msrp or msrps", ErrBadURI, s, scheme)
	}
	rest := s[i+3:]
	end := indexSlashOrSemi(rest)
	if end < 0 {
		return u, fmt.Errorf("%w %q: no \";transport\"", ErrBadURI, s)
	}
	auth := rest[:end]
	rest = rest[end:]
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		u.User = auth[:at]
		auth = auth[at+1:]
		if !validUser(u.User) {
			return u, fmt.Errorf("%w %q: bad userinfo %q", ErrBadURI, s, u.User)
		}
	}
	var portStr string
	if strings.HasPrefix(auth, "[") {
		j := strings.IndexByte(auth, ']')
		if j < 0 {
			return u, fmt.Errorf("%w %q: unterminated IPv6 literal", ErrBadURI, s)
		}
		u.Host = auth[1:j]
		after := auth[j+1:]
		if after != "" {
			if after[0] != ':' {
				return u, fmt.Errorf("%w %q: junk after IPv6 literal", ErrBadURI, s)
			}
			portStr = after[1:]
			if portStr == "" {
				return u, fmt.Errorf("%w %q: empty port", ErrBadURI, s)
			}
		}
		if a, err := netip.ParseAddr(u.Host); err != nil || !a.Is6() || a.Zone() != "" {
			return u, fmt.Errorf("%w %q: bad IPv6 literal %q", ErrBadURI, s, u.Host)
		}
	} else {
		u.Host = auth
		if c := strings.LastIndexByte(auth, ':'); c >= 0 {
			u.Host = auth[:c]
			portStr = auth[c+1:]
			if portStr == "" {
				return u, fmt.Errorf("%w %q: empty port", ErrBadURI, s)
			}
		}
		if !validHost(u.Host) {
			return u, fmt.Errorf("%w %q: bad host %q", ErrBadURI, s, u.Host)
		}
	}
	if portStr != "" {
		p, ok := atoiSmall(portStr)
		if !ok || p < 1 || p > 65535 {
			return u, fmt.Errorf("%w %q: bad port %q", ErrBadURI, s, portStr)
		}
		u.Port = p
	}
	if rest[0] == '/' {
		semi := strings.IndexByte(rest, ';')
		if semi < 0 {
			return u, fmt.Errorf("%w %q: no \";transport\"", ErrBadURI, s)
		}
		u.SessionID = rest[1:semi]
		if !validSessionID(u.SessionID) {
			return u, fmt.Errorf("%w %q: bad session-id %q", ErrBadURI, s, u.SessionID)
		}
		rest = rest[semi:]
	}
	// rest starts with ';'.
	rest = rest[1:]
	tr := rest
	if semi := strings.IndexByte(rest, ';'); semi >= 0 {
		tr = rest[:semi]
		u.Params = rest[semi:]
		if !validParams(u.Params) {
			return u, fmt.Errorf("%w %q: bad parameters %q", ErrBadURI, s, u.Params)
		}
	}
	if tr == "" || !isAlnumString(tr) {
		return u, fmt.Errorf("%w %q: bad transport %q", ErrBadURI, s, tr)
	}
	u.Transport = lowerASCII(tr)
	return u, nil
}

// String returns the canonical form, e.g. msrp://127.0.0.1:2855/abc;tcp.
func (u URI) String() string {
	return string(u.appendTo(make([]byte, 0, 32+len(u.Host)+len(u.SessionID)+len(u.Params))))
}

func (u URI) appendTo(b []byte) []byte {
	if u.Secure {
		b = append(b, "msrps://"...)
	} else {
		b = append(b, "msrp://"...)
	}
	if u.User != "" {
		b = append(b, u.User...)
		b = append(b, '@')
	}
	if strings.IndexByte(u.Host, ':') >= 0 {
		b = append(b, '[')
		b = append(b, u.Host...)
		b = append(b, ']')
	} else {
		b = append(b, u.Host...)
	}
	if u.Port != 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(u.Port), 10)
	}
	if u.SessionID != "" {
		b = append(b, '/')
		b = append(b, u.SessionID...)
	}
	b = append(b, ';')
	if u.Transport == "" {
		b = append(b, "tcp"...)
	} else {
		b = append(b, u.Transport...)
	}
	return append(b, u.Params...)
}

// Equal compares two URIs by RFC 4975 §6.1: scheme, host (case-insensitively, IP addresses as
// addresses), port (a URI with a port never equals one without) and transport must match, the
// session-id is compared case-sensitively, userinfo and other parameters are ignored.
// Percent-encoded unreserved characters in the host are decoded first.
func (u URI) Equal(v URI) bool {
	return u.Secure == v.Secure && u.Port == v.Port && u.SessionID == v.SessionID &&
		strings.EqualFold(u.Transport, v.Transport) && hostEqual(u.Host, v.Host)
}

func hostEqual(a, b string) bool {
	if strings.EqualFold(a, b) || strings.EqualFold(pctDecode(a), pctDecode(b)) {
		return true
	}
	pa, err1 := netip.ParseAddr(a)
	pb, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && pa.Unmap() == pb.Unmap()
}

// Authority returns "host:port" (IPv6 in brackets), the key used for dialling and connection reuse; just
// the host when the URI has no port. No port is guessed: 2855 is the IANA port of MSRP, not a default (RFC
// 4975 §6, §15.4), and a URI without one cannot be dialled (RFC 4976 resolves those of relays by DNS SRV,
// which this package does not do).
func (u URI) Authority() string {
	host := u.Host
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if u.Port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(u.Port)
}

// CheckPort enforces RFC 4975 §6 on a To-Path or From-Path URI: an authority that is a numeric IP address
// MUST carry a port (a host name without one is allowed by the grammar). ParseURI leaves this to the caller
// because the one URI exempt from it, an RFC 4976 AUTH To-Path naming a relay, parses like any other; the
// Reader checks the paths of every request but that one. The error wraps ErrNoPort and ErrBadURI.
func (u URI) CheckPort() error {
	if u.Port != 0 || !isIPHost(u.Host) {
		return nil
	}
	return fmt.Errorf("%w %q: %w: an IP address needs one (RFC 4975 §6)", ErrBadURI, u.String(), ErrNoPort)
}

// isIPHost reports whether a parsed URI's host is an IP address (IPv6 is stored without brackets).
func isIPHost(h string) bool {
	if strings.IndexByte(h, ':') >= 0 {
		return true // ParseURI accepts a colon only inside an IPv6 literal
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// connKey is the connection reuse key: scheme, lower-cased host and port (RFC 4975 §5.4).
func (u URI) connKey() string {
	if u.Secure {
		return "msrps://" + lowerASCII(u.Authority())
	}
	return "msrp://" + lowerASCII(u.Authority())
}

// NewSessionID returns a fresh session-id with 128 bits from crypto/rand (RFC 4975 §14.1 asks for at
// least 80), in URL-safe base64 (22 characters, all "unreserved").
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24 crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParsePath parses a space-separated list of MSRP URIs (To-Path, From-Path, SDP a=path). It takes URIs
// without a port, which only some uses allow: see URI.CheckPort, and ParseSDPPath for an SDP a=path.
func ParsePath(s string) ([]URI, error) {
	return parsePathInto(nil, s)
}

// ParseSDPPath parses the URIs of an SDP a=path, as ParsePath does, and requires every one of them to carry
// an explicit port, host name or not (RFC 4975 §8.2: the port is how a peer connects, 2855 is no default).
// The error for a URI without one wraps ErrNoPort and ErrBadURI.
func ParseSDPPath(s string) ([]URI, error) {
	p, err := ParsePath(s)
	if err != nil {
		return nil, err
	}
	for _, u := range p {
		if u.Port == 0 {
			return nil, fmt.Errorf("%w %q: %w: SDP a=path URIs carry explicit ports (RFC 4975 §8.2)", ErrBadURI, u.String(), ErrNoPort)
		}
	}
	return p, nil
}

// parsePathInto appends the URIs of s to dst; the reader passes a preallocated array to save allocations.
func parsePathInto(dst []URI, s string) ([]URI, error) {
	n0 := len(dst)
	for len(s) > 0 {
		for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
			s = s[1:]
		}
		if s == "" {
			break
		}
		e := indexSpace(s)
		tok := s
		if e >= 0 {
			tok, s = s[:e], s[e:]
		} else {
			s = ""
		}
		u, err := ParseURI(tok)
		if err != nil {
			return dst, err
		}
		dst = append(dst, u)
	}
	if len(dst) == n0 {
		return dst, fmt.Errorf("%w: empty path", ErrBadURI)
	}
	return dst, nil
}

// FormatPath formats a path as a space-separated list.
func FormatPath(p []URI) string {
	return string(appendPath(nil, p))
}

func appendPath(b []byte, p []URI) []byte {
	for i, u := range p {
		if i > 0 {
			b = append(b, ' ')
		}
		b = u.appendTo(b)
	}
	return b
}

// PathEqual compares two paths URI by URI with URI.Equal.
func PathEqual(a, b []URI) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// validHost accepts an IPv4 address or an RFC 3986 reg-name of unreserved and percent-encoded characters (its
// sub-delims are left out: no MSRP stack uses them, and ';' ends the authority here).
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case isUnreserved(c):
		case c == '%' && isPctEncoded(h[i:]):
			i += 2
		default:
			return false
		}
	}
	return true
}

// validUser accepts RFC 3986 userinfo: unreserved, percent-encoded, sub-delims and ':'. Nothing else may be
// echoed into a header (a CR would split it).
func validUser(u string) bool {
	for i := 0; i < len(u); i++ {
		switch c := u[i]; {
		case isUnreserved(c), strings.IndexByte("!$&'()*+,;=:", c) >= 0:
		case c == '%' && isPctEncoded(u[i:]):
			i += 2
		default:
			return false
		}
	}
	return true
}

func isUnreserved(c byte) bool { return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' }

// isPctEncoded reports whether s starts with '%' and two hex digits.
func isPctEncoded(s string) bool { return len(s) >= 3 && isHex(s[1]) && isHex(s[2]) }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// pctDecode decodes the percent-encoded unreserved characters of a host (RFC 3986 §6.2.2.2); others stay.
func pctDecode(h string) string {
	if strings.IndexByte(h, '%') < 0 {
		return h
	}
	b := make([]byte, 0, len(h))
	for i := 0; i < len(h); i++ {
		if h[i] == '%' && isPctEncoded(h[i:]) {
			if v, err := strconv.ParseUint(h[i+1:i+3], 16, 8); err == nil && isUnreserved(byte(v)) {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, h[i])
	}
	return string(b)
}

func validSessionID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isUnreserved(c), c == '+', c == '=', c == '/':
		default:
			return false
		}
	}
	return true
}

// validParams accepts ";token[=token]" repeated (RFC 4975 URI-parameter).
func validParams(p string) bool {
	for _, part := range strings.Split(p[1:], ";") {
		name, value, hasValue := strings.Cut(part, "=")
		if !isToken(name) || hasValue && !isToken(value) {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 4975 token: 1*(%x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 /
// %x41-5A / %x5E-7E).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0x21, c >= 0x23 && c <= 0x27, c == 0x2a, c == 0x2b, c == 0x2d, c == 0x2e,
			c >= 0x30 && c <= 0x39, c >= 0x41 && c <= 0x5a, c >= 0x5e && c <= 0x7e:
		default:
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isAlnumString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases without allocating when s already is lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// atoiSmall parses up to 9 decimal digits.
func atoiSmall(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func indexSlashOrSemi(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' || s[i] == ';' {
			return i
		}
	}
	return -1
}

func indexSpace(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			return i
		}
	}
	return -1
}

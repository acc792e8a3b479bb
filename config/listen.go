package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Listen is one SIP listener, written "udp:127.0.0.1:5060" in the file.
type Listen struct {
	Network string // "udp", "tcp" or "tls"
	Addr    string // host:port; port 0 picks a free one (tests)
}

// ParseListen parses "NETWORK:HOST:PORT" (IPv6 hosts in brackets: "udp:[::1]:5060").
func ParseListen(s string) (Listen, error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok {
		return Listen{}, fmt.Errorf("listener %q: want NETWORK:HOST:PORT, e.g. udp:127.0.0.1:5060", s)
	}
	switch network {
	case "udp", "tcp", "tls":
	default:
		return Listen{}, fmt.Errorf("listener %q: network %q is not udp, tcp or tls", s, network)
	}
	if err := checkHostPort(addr, true); err != nil {
		return Listen{}, fmt.Errorf("listener %q: %w", s, err)
	}
	return Listen{Network: network, Addr: addr}, nil
}

// String returns the listener as the file writes it.
func (l Listen) String() string { return l.Network + ":" + l.Addr }

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *Listen) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a SIP listener is a string like udp:127.0.0.1:5060", n.Line)
	}
	v, err := ParseListen(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*l = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (l Listen) MarshalYAML() (any, error) { return l.String(), nil }

// checkHostPort checks "host:port" with a host that is an IP literal or a DNS name and a port in 0..65535
// (0 only when zeroPort).
func checkHostPort(hp string, zeroPort bool) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %w", hp, err)
	}
	if err := CheckHost(host); err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if p == 0 && !zeroPort {
		return fmt.Errorf("port 0 is not a port a peer can reach")
	}
	return nil
}

// CheckHost accepts an IP literal or a DNS name.
func CheckHost(host string) error {
	if host == "" {
		return errors.New("the host is empty")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("host %q is longer than a DNS name may be", host)
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
			}
		}
	}
	return nil
}

// ListenAddr splits msrp.listen ("msrp://127.0.0.1:2855;tcp", "msrps://[::1]:2855;tcp") into whether it is
// TLS and the host:port to listen on.
func (m MSRP) ListenAddr() (secure bool, hostport string, err error) {
	return parseMSRPListen(m.Listen)
}

// PathHostPort is the host:port our a=path URIs carry: msrp.advertise when set, else the listen address.
func (m MSRP) PathHostPort() (string, error) {
	if m.Advertise != "" {
		return m.Advertise, nil
	}
	_, hp, err := m.ListenAddr()
	return hp, err
}

func parseMSRPListen(uri string) (secure bool, hostport string, err error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	switch {
	case !ok:
		return false, "", fmt.Errorf("%q is not an MSRP URI like msrp://127.0.0.1:2855;tcp", uri)
	case scheme == "msrp":
	case scheme == "msrps":
		secure = true
	default:
		return false, "", fmt.Errorf("%q: scheme %q is not msrp or msrps", uri, scheme)
	}
	authority, transport, ok := strings.Cut(rest, ";")
	if !ok || transport != "tcp" {
		return false, "", fmt.Errorf("%q: want the transport \";tcp\" at the end (RFC 4975 §9)", uri)
	}
	if strings.Contains(authority, "/") {
		return false, "", fmt.Errorf("%q: a listen URI has no session-id path", uri)
	}
	if strings.Contains(authority, "@") {
		return false, "", fmt.Errorf("%q: a listen URI has no userinfo", uri)
	}
	if err := checkHostPort(authority, true); err != nil {
		return false, "", fmt.Errorf("%q: %w", uri, err)
	}
	return secure, authority, nil
}

// checkSIPURI does the light check a config needs: sip: or sips:, a host, and no characters that would break
// a header line. The SIP stack parses it for real.
func checkSIPURI(uri string) error {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok || (scheme != "sip" && scheme != "sips") {
		return fmt.Errorf("%q is not a sip: or sips: URI", uri)
	}
	if strings.ContainsAny(uri, "\r\n <>\"") {
		return fmt.Errorf("%q contains characters a SIP URI may not (space, quotes, <, >, line breaks)", uri)
	}
	if strings.HasPrefix(rest, "sip:") || strings.HasPrefix(rest, "sips:") {
		return fmt.Errorf("%q has the scheme twice", uri)
	}
	if userinfo, _, found := strings.Cut(rest, "@"); found && (userinfo == "" || userinfo[0] == ':') {
		return fmt.Errorf("%q: the user part before '@' is empty", uri)
	}
	host, port, hasPort := sipURIHostPort(rest)
	// Port 0 passes: tests write the contact before the listener has picked its port.
	if _, err := strconv.ParseUint(port, 10, 16); hasPort && err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", uri, port)
	}
	if err := CheckHost(host); err != nil {
		return fmt.Errorf("%q: %w", uri, err)
	}
	if t, ok := sipURIParam(rest, "transport"); ok && !slices.Contains([]string{"udp", "tcp", "tls"}, strings.ToLower(t)) {
		return fmt.Errorf("%q: transport %q: the gateway sends over udp, tcp or tls", uri, t)
	}
	return nil
}

// sipURIParam is the value of the URI parameter name (case-insensitive) of a SIP URI without its scheme.
func sipURIParam(rest, name string) (string, bool) {
	if _, hostport, found := strings.Cut(rest, "@"); found {
		rest = hostport
	}
	rest, _, _ = strings.Cut(rest, "?")
	_, params, _ := strings.Cut(rest, ";")
	for _, p := range strings.Split(params, ";") {
		if k, v, _ := strings.Cut(p, "="); strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// sipURIHostPort is the host (without brackets) and the port, if it has one, of a SIP URI without its scheme.
func sipURIHostPort(rest string) (host, port string, hasPort bool) {
	if _, hostport, found := strings.Cut(rest, "@"); found {
		rest = hostport
	}
	hostport, _, _ := strings.Cut(rest, ";")
	hostport, _, _ = strings.Cut(hostport, "?")
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p, true
	}
	if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		return hostport[1 : len(hostport)-1], "", false
	}
	return hostport, "", false
}

// ContactWarning says why sip.contact may not lead peers to the gateway: it names a port no sip.listen entry
// listens on, so requests and answers sent there reach the gateway only if a NAT or proxy forwards that port.
// "" when a listener has the port, when the contact has none (the first listener's is advertised), or when a
// listener picks its port (0: the contact is that listener's address then).
func (c *Config) ContactWarning() string {
	_, rest, _ := strings.Cut(c.SIP.Contact, ":")
	_, port, hasPort := sipURIHostPort(rest)
	n, err := strconv.ParseUint(port, 10, 16)
	if !hasPort || err != nil || n == 0 {
		return ""
	}
	ports := make([]string, 0, len(c.SIP.Listen))
	for _, l := range c.SIP.Listen {
		_, p, err := net.SplitHostPort(l.Addr)
		m, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || m == 0 || m == n { // compared as numbers: 05070 is 5070
			return ""
		}
		ports = append(ports, p)
	}
	return fmt.Sprintf("sip.contact %s names port %s, but sip.listen listens on %s: peers reach the gateway "+
		"there only through a NAT or proxy that forwards it", c.SIP.Contact, port, strings.Join(slices.Compact(ports), ", "))
}

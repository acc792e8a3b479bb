package gateway

import (
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// checkTrusted lets only sip.trusted sources create sessions or send messages (SPEC §8); others get 403.
// With sip.auth, such a request must also carry valid Digest credentials (checkAuth): both must pass.
func (g *Gateway) checkTrusted(req *sip.Request, tx responder) bool {
	return g.checkSource(req, tx) && g.checkAuth(req, tx)
}

// checkSource answers 403 to requests from sources outside sip.trusted.
func (g *Gateway) checkSource(req *sip.Request, tx responder) bool {
	if g.trustedSource(req) {
		return true
	}
	g.refuse(req, tx, 403, "Forbidden", "source "+req.Source()+" is not in sip.trusted")
	return false
}

// trustedSource says whether req came from a sip.trusted address: the packet's source, or the connection's
// peer over TCP and TLS, never a header.
func (g *Gateway) trustedSource(req *sip.Request) bool {
	trusted := g.cfg.SIP.Trusted // never empty in a validated config; empty trusts nobody
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// dialogSource says whether req, an ACK, BYE or re-INVITE naming s's dialog (s nil: no live dialog), may act
// on it: it comes from a sip.trusted source, or from the host of the dialog's remote target, the peer's
// Contact (the one the dialog began with, or the one a re-INVITE of the peer's moved it to), where a UA sends
// its requests in the dialog itself when no proxy on the way Record-Routes. Any other host that knows the
// dialog's Call-ID and our tag (sniffed or guessed) could otherwise end the session, or, with the ACK to a
// late offer or a re-INVITE, say where the gateway connects and sends the session's messages.
func (g *Gateway) dialogSource(s *Session, req *sip.Request) bool {
	if g.trustedSource(req) {
		return true
	}
	if s == nil {
		return false
	}
	src, err := netip.ParseAddr(sourceHost(req))
	if err != nil {
		return false
	}
	var contact *sip.ContactHeader
	targets := make([]string, 0, 2)
	s.mu.Lock()
	switch {
	case s.dialog != nil:
		if s.dialog.contactHost != "" {
			targets = append(targets, s.dialog.contactHost)
		}
	case s.uas != nil:
		contact = s.uas.InviteRequest.Contact()
	case s.uac != nil && s.uac.InviteResponse != nil:
		contact = s.uac.InviteResponse.Contact()
	}
	if contact != nil {
		targets = append(targets, contact.Address.Host)
	}
	if s.target != nil {
		targets = append(targets, s.target.Host)
	}
	s.mu.Unlock()
	for _, host := range targets {
		// A name is never matched: only sip.trusted sources may act on such a dialog.
		if peer, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && src.Unmap() == peer.Unmap() {
			return true
		}
	}
	return false
}

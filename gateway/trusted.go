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

// dialogSource says whether req, an ACK or BYE naming s's dialog (s nil: no live dialog), may act on it: it
// comes from a sip.trusted source, or from the host of the dialog's remote target, the peer's Contact, where
// a UA sends its ACK and BYE itself when no proxy on the way Record-Routes. Any other host that knows the
// dialog's Call-ID and our tag (sniffed or guessed) could otherwise end the session, or, with the ACK to a
// late offer, say where the gateway connects and sends the session's messages.
func (g *Gateway) dialogSource(s *Session, req *sip.Request) bool {
	if g.trustedSource(req) {
		return true
	}
	if s == nil {
		return false
	}
	var contact *sip.ContactHeader
	s.mu.Lock()
	switch {
	case s.uas != nil:
		contact = s.uas.InviteRequest.Contact()
	case s.uac != nil && s.uac.InviteResponse != nil:
		contact = s.uac.InviteResponse.Contact()
	}
	s.mu.Unlock()
	if contact == nil {
		return false
	}
	peer, err := netip.ParseAddr(strings.Trim(contact.Address.Host, "[]"))
	if err != nil {
		return false // a name: only sip.trusted sources may act on the dialog
	}
	src, err := netip.ParseAddr(sourceHost(req))
	return err == nil && src.Unmap() == peer.Unmap()
}

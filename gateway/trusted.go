package gateway

import (
	"net"
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// checkTrusted lets only sip.trusted sources create sessions or send messages (SPEC §8); others get 403.
// With sip.auth, such a request must also carry valid Digest credentials (checkAuth): both must pass.
func (g *Gateway) checkTrusted(req *sip.Request, tx responder) bool {
	return g.checkSource(req, tx) && g.checkAuth(req, tx)
}

// checkSource answers 403 to requests from sources outside sip.trusted.
func (g *Gateway) checkSource(req *sip.Request, tx responder) bool {
	trusted := g.cfg.SIP.Trusted // never empty in a validated config; empty trusts nobody
	host, _, err := net.SplitHostPort(req.Source())
	if err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			ip = ip.Unmap()
			for _, p := range trusted {
				if p.Contains(ip) {
					return true
				}
			}
		}
	}
	g.refuse(req, tx, 403, "Forbidden", "source "+req.Source()+" is not in sip.trusted")
	return false
}

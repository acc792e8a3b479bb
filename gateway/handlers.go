package gateway

import (
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/event"
)

// allowed is what the gateway serves; everything else known to SIP gets 405 with this list.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE"

// knownMethods are SIP methods the gateway does not serve (405); any other method is unknown (501).
var knownMethods = map[string]bool{
	"REGISTER": true, "SUBSCRIBE": true, "NOTIFY": true, "REFER": true, "INFO": true,
	"PRACK": true, "UPDATE": true, "PUBLISH": true,
}

func (g *Gateway) registerHandlers() {
	// MESSAGEs are taken from the transport in arrival order (udpintake.go): over UDP before sipgo sees
	// them, otherwise by this hook, on the connection's reader goroutine; sipgo's own handler does nothing.
	g.ua.TransportLayer().OnMessage(g.takeFromTransport)
	g.srv.OnMessage(g.onMessage)
	g.srv.OnInvite(g.clean(g.bounded(g.onInvite)))
	g.srv.OnAck(g.clean(g.onAck))
	g.srv.OnBye(g.clean(g.bounded(g.onBye)))
	g.srv.OnCancel(g.clean(g.onCancel))
	g.srv.OnOptions(g.clean(g.bounded(g.onOptions)))
	g.srv.OnNoRoute(g.clean(g.onNoRoute))
}

// clean refuses, 400, a request with a control character in its request line or headers before h sees it
// (badinput.go); an ACK, which has no answer, is dropped. Over UDP such a request never gets this far
// (takeUDP).
func (g *Gateway) clean(h func(req *sip.Request, tx sip.ServerTransaction)) func(req *sip.Request, tx sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		why := requestControl(req)
		switch {
		case why == "":
			addReceived(req)
			h(req, tx)
		case req.IsAck():
			g.log.Info("ACK dropped", "why", why, "call_id", callID(req), "source", req.Source())
		default:
			g.refuse(req, tx, 400, "Bad Request", why)
		}
	}
}

// addReceived adds received to the top Via of req when its sent-by host is not the address req came from
// (RFC 3261 §18.2.1), so that the responses sipgo builds from req carry it; with rport (RFC 3581) sipgo fills
// in both itself.
func addReceived(req *sip.Request) {
	via := req.Via()
	if via == nil || via.Params.Has("received") {
		return
	}
	if v, ok := via.Params.Get("rport"); ok && v == "" {
		return
	}
	if host, _, err := net.SplitHostPort(req.Source()); err == nil && receivedNeeded(via.Host, host) {
		via.Params.Add("received", host)
	}
}

// bounded limits concurrent handlers (limits.max_sip_handlers): over the bound a request gets 503 with
// Retry-After at once, and everything already admitted keeps working.
func (g *Gateway) bounded(h func(req *sip.Request, tx sip.ServerTransaction)) func(req *sip.Request, tx sip.ServerTransaction) {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if g.recent.seen(req) {
			// A repeat of a request already taken (a BYE's retransmission, an INVITE sent again) is answered as
			// the first was (SPEC §8) whatever the load: it holds no slot, and h finds the first's answer.
			h(req, tx)
			return
		}
		if !g.takeHandler() {
			g.overloaded(req)
			g.respond(req, tx, 503, "Service Unavailable", "", g.retryAfter())
			return
		}
		defer g.releaseHandler()
		g.workers.run(func() { h(req, tx) })
	}
}

// takeHandler takes one of limits.max_sip_handlers slots for a request being handled, if one is free.
func (g *Gateway) takeHandler() bool {
	select {
	case g.handlers <- struct{}{}:
		g.inflight.Add(1)
		return true
	default:
		return false
	}
}

func (g *Gateway) releaseHandler() {
	g.inflight.Add(-1)
	<-g.handlers
}

// overloaded logs and counts a request refused over limits.max_sip_handlers (503 with Retry-After).
func (g *Gateway) overloaded(req *sip.Request) {
	g.log.Warn("too many concurrent SIP requests, refusing", "method", string(req.Method), "limit", cap(g.handlers),
		"call_id", callID(req), "source", req.Source())
	g.publish(event.Event{Kind: event.RequestRefused, Code: 503, Reason: "too many concurrent SIP handlers", CallID: callID(req)})
}

// responder sends the final response to a request: sipgo's server transaction, or, for MESSAGEs the gateway
// takes from the transport, a udpResponder or connResponder (udpintake.go).
type responder interface {
	Respond(res *sip.Response) error
}

// directResponder is a responder that writes a final response straight from its request (appendResponse),
// without building a sip.Response: the MESSAGEs the gateway takes from the transport.
type directResponder interface {
	respondTo(req *sip.Request, code int, reason string, hdrs []sip.Header) error
}

// respond sends a final response; warning (if set) goes into a Warning header (RFC 3261 §20.43, code 399).
func (g *Gateway) respond(req *sip.Request, tx responder, code int, reason, warning string, hdrs ...sip.Header) {
	if warning != "" {
		hdrs = append(hdrs[:len(hdrs):len(hdrs)], sip.NewHeader("Warning", warningValue(g.contact.Address.Host, warning)))
	}
	var err error
	if d, ok := tx.(directResponder); ok && code >= 200 {
		err = d.respondTo(req, code, reason, hdrs)
	} else {
		err = tx.Respond(newResponse(req, code, reason, hdrs))
	}
	if err != nil {
		g.responseFailed(req, code, err)
	}
}

// newResponse is the response appendResponse writes, as a sip.Response: for responders that need one.
func newResponse(req *sip.Request, code int, reason string, hdrs []sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	copyUnparsed(req, res)
	dropControlHeaders(res) // of a request refused for one (badinput.go)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

// responseFailed logs a final response that could not be sent: its sender sees only a timeout.
func (g *Gateway) responseFailed(req *sip.Request, code int, err error) {
	g.log.Info("sending response failed", "method", string(req.Method), "code", code, "err", err, "call_id", callID(req), "source", req.Source())
}

// copyUnparsed gives res the request's From and To as they came when they did not parse (newSIPParser):
// sipgo's NewResponseFromRequest copies only parsed ones, and a response repeats them (RFC 3261 §8.2.6.2).
func copyUnparsed(req *sip.Request, res *sip.Response) {
	for _, name := range []string{"From", "To"} {
		if res.GetHeader(name) == nil {
			if h := req.GetHeader(name); h != nil {
				res.AppendHeader(sip.HeaderClone(h))
			}
		}
	}
}

// refuse answers a request the gateway will not serve, logs why and counts it.
func (g *Gateway) refuse(req *sip.Request, tx responder, code int, reason, why string, hdrs ...sip.Header) {
	g.log.Info("request refused", "method", string(req.Method), "code", code, "why", why, "call_id", callID(req), "source", req.Source())
	// Counted before the answer leaves, so whoever sees the answer also sees the count.
	g.publish(event.Event{Kind: event.RequestRefused, Code: code, Reason: why, CallID: callID(req)})
	g.respond(req, tx, code, reason, why, hdrs...)
}

// addressProblem says what is wrong with req's From and To (SPEC §8: 400), or "" when both parsed. A header
// sipgo could not parse is kept as it came (newSIPParser): From() or To() is then nil. With needHost, a URI
// without a host (tel:, or sip: without one) is wrong too: a MESSAGE's From and To are where its answers and
// notifications go.
func addressProblem(req *sip.Request, needHost bool) string {
	var from, to *sip.Uri
	if h := req.From(); h != nil {
		from = &h.Address
	}
	if h := req.To(); h != nil {
		to = &h.Address
	}
	if p := headerAddressProblem(req, "From", from, needHost); p != "" {
		return p
	}
	return headerAddressProblem(req, "To", to, needHost)
}

// maxQuoted bounds how much of a broken header a Warning repeats.
const maxQuoted = 80

func headerAddressProblem(req *sip.Request, name string, addr *sip.Uri, needHost bool) string {
	switch {
	case addr != nil && (addr.Host != "" || !needHost):
		return ""
	case addr != nil:
		return name + " URI " + clip(addr.String(), maxQuoted) + " has no host"
	}
	h := req.GetHeader(name)
	switch {
	case h == nil:
		return "no " + name + " header"
	case strings.TrimSpace(h.Value()) == "":
		return "empty " + name + " header"
	}
	return name + " header does not parse: " + clip(h.Value(), maxQuoted)
}

// clip is s cut to at most n bytes, marked with "..." when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// warningValue is a Warning header's value (RFC 3261 §20.43). Its text often quotes the request (a header
// that did not parse): a quote would end the quoted-string early, and a control character (a bare LF, which
// sipgo keeps in a header value) would end the header and start one of the request's choosing.
func warningValue(agent, text string) string {
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r < ' ' || r == 0x7f:
			return ' '
		}
		return r
	}, text)
	if agent == "" {
		agent = "msrpgw"
	}
	return `399 ` + agent + ` "` + text + `"`
}

func callID(req *sip.Request) string {
	if req == nil {
		return ""
	}
	if c := req.CallID(); c != nil {
		return c.Value()
	}
	return ""
}

// onOptions answers OPTIONS: 200 with what the gateway takes, out of a dialog or in one of its dialogs.
func (g *Gateway) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if p := addressProblem(req, false); p != "" {
		g.refuse(req, tx, 400, "Bad Request", p)
		return
	}
	if a, bad := badExtension(req); bad {
		g.refuse(req, tx, a.code, a.reason, a.warning, a.hdrs...)
		return
	}
	// An in-dialog OPTIONS neither is checked against nor moves the dialog's remote CSeq (RFC 3261 §12.2.2
	// asks both of every request in a dialog): proxies ping dialogs with OPTIONS whose CSeq is not the UA's
	// (OpenSIPS, Kamailio), and one above the UA's would make the UA's own BYE "out of order", 500, leaving
	// the session up. Answering a ping costs nothing; refusing the BYE would.
	if toTag(req) != "" && g.inDialog(req) == nil {
		// An in-dialog OPTIONS (a proxy's dialog ping, as OpenSIPS and Kamailio send) for a dialog the gateway
		// does not have, ended or lost in a restart: 481 tells the pinger to end its side (RFC 3261 §12.2.2).
		g.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	accept := []string{"application/sdp"}
	for _, t := range g.cfg.Gateway.Message.AcceptTypes {
		accept = append(accept, sipMediaRange(t))
	}
	res.AppendHeader(sip.NewHeader("Accept", strings.Join(accept, ", ")))
	if err := tx.Respond(res); err != nil {
		g.log.Debug("OPTIONS response failed", "err", err)
	}
}

// badExtension is the answer to req when it requires an extension: 420 Bad Extension with an Unsupported
// header naming every option tag in its Require headers (RFC 3261 §8.2.2.3). The gateway supports none, 100rel
// (RFC 3262) among them: answered as if it did, the peer waits for what the extension promised (reliable
// provisional responses, a PRACK to answer) and never gets it. ACK and CANCEL are not asked (their Require is
// ignored).
func badExtension(req *sip.Request) (answer, bool) {
	if req.GetHeader("require") == nil { // lower case: looked up without allocating, as on every MESSAGE
		return answer{}, false
	}
	var tags []string
	for _, h := range req.GetHeaders("Require") {
		for _, t := range strings.Split(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	if len(tags) == 0 {
		return answer{}, false
	}
	list := strings.Join(tags, ", ")
	return answer{code: 420, reason: "Bad Extension", warning: "unsupported extension required: " + list,
		hdrs: []sip.Header{sip.NewHeader("Unsupported", list)}}, true
}

func (g *Gateway) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	m := string(req.Method)
	if knownMethods[m] {
		g.refuse(req, tx, 405, "Method Not Allowed", m+" is not served by this gateway", sip.NewHeader("Allow", allowed))
		return
	}
	g.refuse(req, tx, 501, "Not Implemented", "unknown method "+m, sip.NewHeader("Allow", allowed))
}

// onCancel sees only CANCELs that matched no INVITE transaction (sipgo answers matching ones itself).
func (g *Gateway) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	if p := addressProblem(req, false); p != "" {
		g.refuse(req, tx, 400, "Bad Request", p)
		return
	}
	if g.recent.pendingAs(req, sip.MESSAGE) {
		// It names a MESSAGE still waiting for its outcome (wait mode), whose transaction sipgo never had:
		// answered 200, and the MESSAGE goes on, as a CANCEL does nothing to a non-INVITE request (RFC 3261
		// §9.2).
		g.respond(req, tx, 200, "OK", "")
		return
	}
	g.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// This file makes the requests the gateway sends inside its dialogs, the ACK to its INVITE's 2xx and the BYE
// that ends a session, and puts right the CANCEL of an INVITE, which sipgo makes as if it were one of them
// (requester, at the end). sipgo's dialogs fill in what the dialog decides (From, To, Call-ID, CSeq, the
// route set); the request itself is the gateway's, so that it goes the way its other requests go:
//
//   - over UDP from the SIP listener (udpclient.go fromListener). sipgo's own BYE leaves from a socket sipgo
//     opens for a destination it has not heard from, such as a Contact that is not where the peer's INVITE
//     or 200 came from: an ephemeral port on every address, which the BYE's Via names.
//   - through sip.outbound_proxy when the dialog has no route set (SPEC §1: MESSAGE, INVITE and BYE go
//     there). sipgo sends them straight to the remote target then, a Contact the gateway may have no route
//     to: the proxy did not Record-Route, or the INVITE did not come through it. A route set decides by
//     itself: the proxies on it asked to see the dialog's requests, the outbound proxy among them if it did.

// ackUAC ACKs the 2xx to the gateway's INVITE (RFC 3261 §13.2.2.4), with the credentials the INVITE carried
// (answers to challenges, auth.go): the ACK MUST carry the same, as it cannot be challenged itself.
func (g *Gateway) ackUAC(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	req, err := g.uacRequest(sip.ACK, dlg, nil)
	if err != nil {
		return err
	}
	for _, name := range []string{"Proxy-Authorization", "Authorization"} {
		for _, h := range dlg.InviteRequest.GetHeaders(name) {
			req.AppendHeader(sip.HeaderClone(h))
		}
	}
	return dlg.WriteAck(ctx, req)
}

// byeUAC ends a dialog the gateway's INVITE set up; target, when not nil, is its remote target as the peer's
// last re-INVITE refreshed it.
//
// The BYE waits until the 2xx is ACKed (acked closed, setup; nil: ACKed already): sipgo's WriteBye sends
// nothing on a dialog not confirmed yet, and confirms it only after the ACK is written. A session ended just
// as its ACK went out (the peer has it, and may act on it) got no BYE at all.
func (g *Gateway) byeUAC(ctx context.Context, acked <-chan struct{}, dlg *sipgo.DialogClientSession, target *sip.Uri) error {
	if acked != nil {
		select {
		case <-acked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	req, err := g.uacRequest(sip.BYE, dlg, target)
	if err != nil {
		return err
	}
	return dlg.WriteBye(ctx, req)
}

// uacRequest is a request in a dialog the gateway's INVITE set up: to the remote target of its 2xx, or
// refreshed, when not nil (RFC 3261 §12.2.1.2), with the route set its Record-Route gave (RFC 3261 §12.1.2).
func (g *Gateway) uacRequest(method sip.RequestMethod, dlg *sipgo.DialogClientSession, refreshed *sip.Uri) (*sip.Request, error) {
	res := dlg.InviteResponse
	if res == nil {
		return nil, errors.New(string(method) + ": the INVITE has no response")
	}
	target := dlg.InviteRequest.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	if refreshed != nil {
		target = *refreshed
	}
	routeSet := len(res.GetHeaders("Record-Route")) > 0
	return g.dialogRequest(method, target, dlg.InviteRequest.Transport(), routeSet), nil
}

// byeUAS ends a dialog a peer's INVITE set up, with a BYE to the INVITE's Contact (RFC 3261 §12.1.1; the
// gateway refuses an INVITE without one), or target when a re-INVITE refreshed it, and the route set of its
// Record-Route.
//
// The BYE waits until the INVITE is answered (answered closed, onInvite): a session can end before its 200 is
// out, and sipgo's WriteBye reads the dialog's response, nil until then (a nil dereference that killed the
// process) and written meanwhile. An INVITE refused instead has no dialog to end.
func (g *Gateway) byeUAS(ctx context.Context, answered <-chan struct{}, dlg *sipgo.DialogServerSession, target *sip.Uri) error {
	select {
	case <-answered:
	case <-ctx.Done():
		return ctx.Err()
	}
	if res := dlg.InviteResponse; res == nil || !res.IsSuccess() {
		return nil
	}
	inv := dlg.InviteRequest
	if target == nil {
		target = &inv.Contact().Address
	}
	routeSet := len(inv.GetHeaders("Record-Route")) > 0
	return dlg.WriteBye(ctx, g.dialogRequest(sip.BYE, *target, inv.Transport(), routeSet))
}

// dialogRequest is a request to target inside a dialog, over transport, for sipgo's dialog to complete: the
// dialog adds its route set after the outbound proxy's Route, which is there only when it has none.
func (g *Gateway) dialogRequest(method sip.RequestMethod, target sip.Uri, transport string, routeSet bool) *sip.Request {
	req := sip.NewRequest(method, target)
	req.SetTransport(transport)
	if !routeSet {
		g.route(req)
	}
	g.udpc.fromListener(req)
	return req
}

// requester is the gateway's sipgo client's transaction requester: every request the client sends goes
// through it, to sipgo's transaction layer (or, an ACK, straight to the transport) as it would without one.
// An ACK or BYE through the outbound proxy gets the proxy's transport on the way (proxyTransport), and a
// CANCEL is put right. sipgo builds it as a request in the early dialog of the provisional
// response it follows, with that response's Record-Route as its Route headers; but a CANCEL goes where its
// INVITE went, with the INVITE's Route headers and nothing else (RFC 3261 §9.1). Sent along the early
// dialog's route set, it reached a proxy that never saw the INVITE's transaction, and the INVITE was never
// cancelled. The gateway's INVITEs carry one Route, the outbound proxy's (route), or none.
type requester struct{ g *Gateway }

func (r requester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	switch {
	case req.IsCancel():
		req = r.g.cancelAsInvite(req)
	case req.IsAck() || req.Method == sip.BYE:
		r.g.proxyTransport(req)
		r.g.targetTransport(req)
	}
	if req.IsAck() {
		return nil, r.g.writeAck(req)
	}
	tx, err := r.g.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.IsInvite() {
		if w, ok := r.g.forks.Load(req); ok {
			tx.OnRetransmission(w.(*forkWatch).answered)
		}
	}
	return tx, nil
}

// writeAck sends an ACK straight to the transport, as sipgo does, but within Timer B: sipgo gives the
// connection it may open for one (to a 2xx's Contact) no time limit, and a TLS server there that never
// finishes the handshake held the session's setup, and the gateway's shutdown, for ever.
func (g *Gateway) writeAck(req *sip.Request) error {
	ctx, cancel := context.WithTimeout(g.ctx, sip.Timer_B)
	defer cancel()
	tpl := g.ua.TransportLayer()
	conn, err := tpl.ClientRequestConnection(ctx, req)
	if err != nil {
		return err
	}
	defer conn.TryClose()
	return conn.WriteMsg(req)
}

// forkWatch ends the dialogs of an INVITE of the gateway's that a forking proxy made besides the one its
// dialog took: each further 2xx, from another branch (another To tag), is ACKed and its dialog ended with BYE
// (RFC 3261 §13.2.2.4). sipgo's transaction hands such a 2xx to its retransmission hook only, where sipgo's
// dialog takes it for a retransmission of its own 2xx and ACKs it with that 2xx's To tag: the other branch's
// UAS never had its ACK, nor a BYE.
type forkWatch struct {
	g   *Gateway
	inv *sip.Request

	mu       sync.Mutex
	accepted string          // the To tag of the 2xx the dialog took; "" until then
	ended    map[string]bool // the other branches' To tags, BYE sent
}

// watchForks makes the INVITE inv's transactions report their further 2xx to the returned watch (requester);
// the caller forgets inv (g.forks) once no transaction for it is made any more.
func (g *Gateway) watchForks(inv *sip.Request) *forkWatch {
	w := &forkWatch{g: g, inv: inv}
	g.forks.Store(inv, w)
	return w
}

// accept records the 2xx the dialog took.
func (w *forkWatch) accept(res *sip.Response) {
	w.mu.Lock()
	if w.accepted == "" {
		w.accepted = responseToTag(res)
	}
	w.mu.Unlock()
}

// answered gets each response after the first 2xx. Until the dialog took its 2xx, another one is left to its
// UAS's retransmissions; a retransmission of a branch's 2xx is ACKed again, its BYE is sent once.
func (w *forkWatch) answered(res *sip.Response) {
	if !res.IsSuccess() || res.To() == nil {
		return // a 2xx without To names no dialog to ACK
	}
	tag := responseToTag(res)
	w.mu.Lock()
	if w.accepted == "" || tag == w.accepted {
		w.mu.Unlock()
		return // the dialog's own 2xx: sipgo's dialog ACKs it again
	}
	bye := !w.ended[tag]
	if w.ended == nil {
		w.ended = make(map[string]bool)
	}
	w.ended[tag] = true
	w.mu.Unlock()
	g := w.g
	branch := uacDialog(w.inv, res)
	if err := g.client.WriteRequest(g.inDialogRequest(sip.ACK, branch, nil)); err != nil {
		g.log.Info("ACK to a forked 2xx not sent", "err", err, "call_id", callID(w.inv), "to_tag", tag)
		return
	}
	if bye {
		g.log.Info("2xx from another branch of a forked INVITE: ACK and BYE", "call_id", callID(w.inv), "to_tag", tag)
		req := g.inDialogRequest(sip.BYE, branch, nil)
		g.goBackground(func() {
			ctx, cancel := context.WithTimeout(g.ctx, 5*time.Second)
			defer cancel()
			g.client.Do(ctx, req)
		})
	}
}

func responseToTag(res *sip.Response) string {
	if t := res.To(); t != nil {
		v, _ := t.Params.Get("tag")
		return v
	}
	return ""
}

// cancelAsInvite is the CANCEL req without the Route headers sipgo added, and with the INVITE's. It is made
// anew: sipgo's request keeps the first Route it parsed, and sends to it, after the header is removed.
func (g *Gateway) cancelAsInvite(req *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, req.Recipient)
	for _, h := range req.Headers() {
		if !strings.EqualFold(h.Name(), "Route") {
			c.AppendHeader(h)
		}
	}
	g.route(c)
	c.SetTransport(req.Transport())
	c.Laddr = req.Laddr
	return c
}

// targetTransport gives req, an ACK or BYE that goes straight to the dialog's remote target (no Route: the
// dialog has no route set and there is no outbound proxy), the transport the target's URI names (RFC 3261
// §12.2.1.1 and §8.1.2, RFC 3263 §4.1): ;transport=tcp or tls, or sips: for TLS. sipgo's dialog gives it the
// transport of the dialog's INVITE, and a peer whose Contact says ;transport=tcp, its INVITE or 2xx having come
// over UDP (a proxy that changed the transport without Record-Routing), never got our ACK and BYE. A URI
// that names no transport leaves the dialog's.
func (g *Gateway) targetTransport(req *sip.Request) {
	if req.Route() != nil {
		return
	}
	u := &req.Recipient
	tp, _ := u.UriParams.Get("transport")
	tp = strings.ToUpper(tp)
	if u.IsEncrypted() && (tp == "" || tp == "TCP") {
		tp = "TLS"
	}
	switch tp {
	case "UDP", "TCP", "TLS":
	default:
		return // none named, or one the gateway does not send requests over
	}
	if strings.EqualFold(req.Transport(), tp) {
		return
	}
	req.SetTransport(tp)
	if v := req.Via(); v != nil {
		v.Transport = tp
	}
	req.Laddr = sip.Addr{} // the UDP listener's address, given by dialogRequest, is no address to dial from
	g.udpc.fromListener(req)
}

// proxyTransport gives req, an ACK or BYE, the transport towards the outbound proxy when dialogRequest routed
// it there, as an INVITE or MESSAGE sent there has. sipgo's dialog gives it the transport of the dialog's
// INVITE, which for an INVITE from the peer is the peer's: a BYE to a UDP proxy went over TCP or TLS.
func (g *Gateway) proxyTransport(req *sip.Request) {
	r := req.Route()
	if g.proxy == nil || r == nil || r.Address.String() != g.proxy.String() {
		return
	}
	toProxy := sip.NewRequest(req.Method, req.Recipient)
	g.route(toProxy)
	tp := toProxy.Transport() // from the proxy's URI, as for the gateway's other requests
	req.SetTransport(tp)
	if v := req.Via(); v != nil {
		v.Transport = tp
	}
	req.Laddr = sip.Addr{}
	g.udpc.fromListener(req)
}

// confirmedDialog is what a session keeps of its SIP dialog once it is up, the 2xx ACKed: what the BYE that
// ends it needs (RFC 3261 §12.2.1.1), and the host of the peer's Contact (dialogSource). sipgo's dialog
// objects hold the INVITE twice (the dialog's clone and, through the INVITE's server transaction, the
// original), the 2xx, and all their headers, parsed: about 4 KB of the 10 KB an idle session took. They are
// dropped when the session comes up (confirm); the dialog's own 2xx retransmissions, ACKs and the INVITE's
// transactions are over by then, and the gateway sends no request in the dialog but the BYE.
type confirmedDialog struct {
	from        sip.FromHeader // ours, with our tag
	to          sip.ToHeader   // the peer's, with its tag
	callID      sip.CallIDHeader
	cseq        uint32   // our CSeq number in the dialog so far
	routes      []string // the route set, as the Route headers carry it (RFC 3261 §12.1.1, §12.1.2)
	target      sip.Uri  // the remote target: the peer's Contact (a 2xx without one: the INVITE's Request-URI)
	contactHost string   // the host of the peer's Contact; "" when it sent none
	transport   string   // the INVITE's
}

// inDialogRequest is a request in d: to its remote target, or to target when not nil, along its route set. An
// ACK carries the INVITE's CSeq number, any other request the next (the gateway sends no other in a dialog).
//
// A route set whose first URI has no lr parameter starts at a strict router (RFC 2543): the request goes to
// it with its URI as Request-URI, the rest of the route set and then the remote target as Route headers (RFC
// 3261 §12.2.1.1).
func (g *Gateway) inDialogRequest(method sip.RequestMethod, d *confirmedDialog, target *sip.Uri) *sip.Request {
	to := d.target
	if target != nil {
		to = *target
	}
	routes := d.routes
	strict, isStrict := strictRouter(routes)
	if isStrict {
		routes = append(slices.Clone(routes[1:]), "<"+to.String()+">")
		to = strict
	}
	req := g.dialogRequest(method, to, d.transport, len(routes) > 0)
	if isStrict {
		req.SetDestination(sipHostPort(&strict, d.transport)) // not the first Route, as for a loose router
	}
	from, dest, callID := d.from, d.to, d.callID
	from.Params, dest.Params = from.Params.Clone(), dest.Params.Clone()
	seq := d.cseq
	if method != sip.ACK {
		seq++
	}
	maxForwards := sip.MaxForwardsHeader(70)
	contact := g.contact
	req.PrependHeader(&from, &dest, &callID, &maxForwards, &sip.CSeqHeader{SeqNo: seq, MethodName: method})
	for _, r := range routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(sip.HeaderClone(&contact))
	return req
}

// strictRouter is the first URI of routes, a route set as its Route header values, when it has no lr
// parameter; false for an empty route set, a loose router's, or a first value that does not parse.
func strictRouter(routes []string) (sip.Uri, bool) {
	if len(routes) == 0 {
		return sip.Uri{}, false
	}
	r := routes[0]
	i, j := strings.IndexByte(r, '<'), strings.IndexByte(r, '>')
	if i < 0 || j < i {
		return sip.Uri{}, false
	}
	var u sip.Uri
	if err := sip.ParseUri(r[i+1:j], &u); err != nil || u.UriParams.Has("lr") {
		return sip.Uri{}, false
	}
	u.Headers = nil // not allowed in a Request-URI (RFC 3261 §19.1.5)
	return u, true
}

// sipHostPort is where a request to u goes: its host and port, the transport's default port when it has none.
func sipHostPort(u *sip.Uri, transport string) string {
	port := u.Port
	if port <= 0 {
		port = sip.DefaultPort(sip.NetworkToLower(transport))
	}
	return net.JoinHostPort(strings.Trim(u.Host, "[]"), strconv.Itoa(port))
}

// errDialogConfirmed: the session's sipgo dialog is gone (confirmedDialog); the gateway answers the peer's BYE.
var errDialogConfirmed = errors.New("dialog confirmed")

// confirmLocked replaces the session's sipgo dialog with what is left of it once the session is up. s.mu is
// held. The route set and the tags are those sipgo's dialog would have used: for a dialog the peer's INVITE
// set up, the INVITE's Record-Route in order; for one the gateway's set up, its 2xx's in reverse.
func (s *Session) confirmLocked() {
	if s.byeSent {
		// A BYE is under way, either side's, on sipgo's dialog (the peer's BYE reads the dialog's INVITE as it
		// is answered): it stays.
		return
	}
	switch {
	case s.uas != nil:
		inv := s.uas.InviteRequest // our tag on its To (sipgo's ReadInvite)
		d := &confirmedDialog{from: inv.To().AsFrom(), to: inv.From().AsTo(), callID: *inv.CallID(),
			cseq: inv.CSeq().SeqNo, target: inv.Contact().Address, transport: inv.Transport()}
		d.contactHost = d.target.Host
		for _, rr := range inv.GetHeaders("Record-Route") {
			d.routes = append(d.routes, rr.Value())
		}
		// The INVITE's server transaction, which onInvite terminated once the ACK came, is kept by sipgo for
		// its Timer L (32 s) all the same, and with it this dialog (its hooks): what the dialog holds is let
		// go now. sipgo reads neither any more: RespondSDP returned, and the gateway calls no method of the
		// dialog after this.
		s.uas.InviteRequest, s.uas.InviteResponse = nil, nil
		s.dialog, s.uas = d, nil
	case s.uac != nil && s.uac.InviteResponse != nil && s.uac.InviteResponse.To() != nil:
		s.dialog, s.uac, s.acked = uacDialog(s.uac.InviteRequest, s.uac.InviteResponse), nil, nil
	}
}

// uacDialog is the dialog res, a 2xx to the gateway's INVITE inv, set up: to the 2xx's Contact (or the INVITE's
// Request-URI), along its Record-Route in reverse (RFC 3261 §12.1.2). The 2xx of another branch of a forked
// INVITE makes a dialog of its own (forkWatch).
func uacDialog(inv *sip.Request, res *sip.Response) *confirmedDialog {
	d := &confirmedDialog{from: *inv.From(), to: *res.To(), callID: *inv.CallID(), cseq: inv.CSeq().SeqNo,
		target: inv.Recipient, transport: inv.Transport()}
	if c := res.Contact(); c != nil {
		d.target, d.contactHost = c.Address, c.Address.Host
	}
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		d.routes = append(d.routes, rr[i].Value())
	}
	return d
}

// byeConfirmed ends a confirmed dialog: a BYE to its remote target, or to target when a re-INVITE refreshed
// it, along its route set. The dialog's first BYE is the only request the gateway sends in it: its CSeq is the
// next number.
//
// A 401 or 407 is answered with sip.credentials, once per challenge (SPEC §8), as for INVITE and MESSAGE: a
// proxy that challenges every request would otherwise leave the peer's side of the dialog up.
func (g *Gateway) byeConfirmed(ctx context.Context, d *confirmedDialog, target *sip.Uri) error {
	req := g.inDialogRequest(sip.BYE, d, target)
	var challenges answered
	for {
		res, err := g.client.Do(ctx, req)
		switch {
		case err != nil:
			return err
		case res == nil: // sipgo's answer when the transaction is torn down under it (the gateway closing)
			return errors.New("BYE: transaction ended without a response")
		case res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired:
			if aerr := g.authorize(req, res, &challenges); aerr != nil {
				return fmt.Errorf("BYE answered %d %s: %w", res.StatusCode, res.Reason, aerr)
			}
			continue
		case !res.IsSuccess():
			return fmt.Errorf("BYE answered %d %s", res.StatusCode, res.Reason)
		}
		return nil
	}
}

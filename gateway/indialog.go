package gateway

import (
	"context"
	"errors"
	"strings"

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

// ackUAC ACKs the 2xx to the gateway's INVITE (RFC 3261 §13.2.2.4).
func (g *Gateway) ackUAC(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	req, err := g.uacRequest(sip.ACK, dlg)
	if err != nil {
		return err
	}
	return dlg.WriteAck(ctx, req)
}

// byeUAC ends a dialog the gateway's INVITE set up.
func (g *Gateway) byeUAC(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	req, err := g.uacRequest(sip.BYE, dlg)
	if err != nil {
		return err
	}
	return dlg.WriteBye(ctx, req)
}

// uacRequest is a request in a dialog the gateway's INVITE set up: to the remote target of its 2xx, with the
// route set its Record-Route gave (RFC 3261 §12.1.2).
func (g *Gateway) uacRequest(method sip.RequestMethod, dlg *sipgo.DialogClientSession) (*sip.Request, error) {
	res := dlg.InviteResponse
	if res == nil {
		return nil, errors.New(string(method) + ": the INVITE has no response")
	}
	target := dlg.InviteRequest.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	routeSet := len(res.GetHeaders("Record-Route")) > 0
	return g.dialogRequest(method, target, dlg.InviteRequest.Transport(), routeSet), nil
}

// byeUAS ends a dialog a peer's INVITE set up, with a BYE to the INVITE's Contact (RFC 3261 §12.1.1; the
// gateway refuses an INVITE without one) and the route set of its Record-Route.
//
// The BYE waits until the INVITE is answered (answered closed, onInvite): a session can end before its 200 is
// out, and sipgo's WriteBye reads the dialog's response, nil until then (a nil dereference that killed the
// process) and written meanwhile. An INVITE refused instead has no dialog to end.
func (g *Gateway) byeUAS(ctx context.Context, answered <-chan struct{}, dlg *sipgo.DialogServerSession) error {
	select {
	case <-answered:
	case <-ctx.Done():
		return ctx.Err()
	}
	if res := dlg.InviteResponse; res == nil || !res.IsSuccess() {
		return nil
	}
	inv := dlg.InviteRequest
	routeSet := len(inv.GetHeaders("Record-Route")) > 0
	return dlg.WriteBye(ctx, g.dialogRequest(sip.BYE, inv.Contact().Address, inv.Transport(), routeSet))
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
	}
	if req.IsAck() {
		return nil, r.g.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := r.g.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
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

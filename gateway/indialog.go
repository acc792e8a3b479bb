package gateway

import (
	"context"
	"errors"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// This file makes the requests the gateway sends inside its dialogs: the ACK to its INVITE's 2xx and the BYE
// that ends a session. sipgo's dialogs fill in what the dialog decides (From, To, Call-ID, CSeq, the route
// set); the request itself is the gateway's, so that it goes the way its other requests go:
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
func (g *Gateway) byeUAS(ctx context.Context, dlg *sipgo.DialogServerSession) error {
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

package gateway

import (
	"context"
	"errors"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// This file makes the BYEs the gateway sends inside its dialogs. sipgo's dialogs fill in what the dialog
// decides (From, To, Call-ID, CSeq, the route set); the request itself is the gateway's, so that it leaves
// the way its other requests do: over UDP from the SIP listener (udpclient.go fromListener). sipgo's own BYE
// leaves from a socket sipgo opens for a destination it has not heard from, such as a Contact that is not
// where the peer's INVITE or 200 came from: an ephemeral port on every address, which the BYE's Via names.

// byeUAC ends a dialog the gateway's INVITE set up, with a BYE to the remote target of its 2xx (RFC 3261
// §12.1.2).
func (g *Gateway) byeUAC(ctx context.Context, dlg *sipgo.DialogClientSession) error {
	res := dlg.InviteResponse
	if res == nil {
		return errors.New("BYE: the INVITE has no response")
	}
	target := dlg.InviteRequest.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	return dlg.WriteBye(ctx, g.dialogRequest(sip.BYE, target, dlg.InviteRequest.Transport()))
}

// byeUAS ends a dialog a peer's INVITE set up, with a BYE to the INVITE's Contact (RFC 3261 §12.1.1; the
// gateway refuses an INVITE without one).
func (g *Gateway) byeUAS(ctx context.Context, dlg *sipgo.DialogServerSession) error {
	inv := dlg.InviteRequest
	return dlg.WriteBye(ctx, g.dialogRequest(sip.BYE, inv.Contact().Address, inv.Transport()))
}

// dialogRequest is a request to target inside a dialog, over transport, for sipgo's dialog to complete.
func (g *Gateway) dialogRequest(method sip.RequestMethod, target sip.Uri, transport string) *sip.Request {
	req := sip.NewRequest(method, target)
	req.SetTransport(transport)
	g.udpc.fromListener(req)
	return req
}

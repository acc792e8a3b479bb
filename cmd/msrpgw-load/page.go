package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// pageSide plays the page-mode users: it sends MESSAGEs to the gateway and answers the MESSAGEs the gateway
// sends to them.
type pageSide struct {
	*sipUA
	gw        string
	transport string
}

// newPageSide starts the phones' UA. onMessage gets each MESSAGE the gateway delivers and returns the code to
// answer with; clock learns when each MESSAGE leaves over UDP; arrived (if not nil) gets each MSRP→MESSAGE
// stamp in the order the phones' sockets read them (arrival.go).
func newPageSide(gw, transport string, onMessage func(req *sip.Request) int, clock *wireClock, arrived func(stamp)) (*pageSide, error) {
	p := &pageSide{gw: gw, transport: transport}
	var opts []sipgo.UserAgentOption
	if arrived != nil {
		opts = append(opts, sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(newArrivalOrder(arrived).filter)))
	}
	u, err := newSIPUA("msrpgw-load-phones", func(u *sipUA) {
		u.pc = clockedConn{PacketConn: u.pc, clock: clock}
		u.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
			code := onMessage(req)
			tx.Respond(sip.NewResponseFromRequest(req, code, reason(code), nil))
		})
	}, opts...)
	if err != nil {
		return nil, err
	}
	p.sipUA = u
	return p, nil
}

// send writes one MESSAGE from fromURI to toURI (its Request-URI) through the gateway. It returns once the
// request is on the wire, so the caller's order is the wire order; done gets the final response code (0 when
// the transaction ended without one) from another goroutine.
func (p *pageSide) send(ctx context.Context, fromURI, toURI, body string, done func(code int)) error {
	var ruri, from sip.Uri
	if err := sip.ParseUri(toURI, &ruri); err != nil {
		return fmt.Errorf("bad To URI %q: %w", toURI, err)
	}
	if err := sip.ParseUri(fromURI, &from); err != nil {
		return fmt.Errorf("bad From URI %q: %w", fromURI, err)
	}
	req := sip.NewRequest(sip.MESSAGE, ruri)
	fh := &sip.FromHeader{Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(fh)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain"))
	req.SetBody([]byte(body))
	req.SetDestination(p.gw)
	if strings.EqualFold(p.transport, "tcp") {
		req.SetTransport("TCP")
	} else if la, ok := p.pc.LocalAddr().(*net.UDPAddr); ok {
		// Out of the phones' listening socket, as a phone sends (and through clockedConn), not a socket
		// sipgo would open for the destination.
		req.Laddr = sip.Addr{IP: la.IP, Port: la.Port}
	}
	tx, err := p.client.TransactionRequest(ctx, req)
	if err != nil {
		return err
	}
	go waitFinal(ctx, tx, done)
	return nil
}

// waitFinal waits for the final response of a client transaction.
func waitFinal(ctx context.Context, tx sip.ClientTransaction, done func(code int)) {
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.StatusCode >= 200 {
				done(int(res.StatusCode))
				return
			}
		case <-tx.Done():
			done(0)
			return
		case <-ctx.Done():
			done(0)
			return
		}
	}
}

func reason(code int) string {
	switch code {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 404:
		return "Not Found"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 488:
		return "Not Acceptable Here"
	}
	return "Status"
}

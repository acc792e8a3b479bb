package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// MESSAGEs are the gateway's bulk traffic, and sipgo's way with a request is costly for them: a goroutine
// per request, a server transaction with its timers and a context, a handler that must stay until the answer,
// and requests racing each other to their session. That was about half of the gateway's CPU per MESSAGE
// (docs/PERFORMANCE.md). So the gateway takes MESSAGEs from sipgo's transport, on the connection's reader
// goroutine, in the order they arrived, and hands them to takeMessage, which routes and queues them without
// waiting; the final response is written back on the transport when it is known. What a server transaction
// would still do is done by the recent-request memory (recent.go): a retransmission is answered with the
// same response, never handled twice.
//
//   - Over UDP, through sipgo's transport read filter (takeUDP): the datagram is parsed here (with sipgo's
//     parser) and sipgo never sees it — no goroutine, no transaction.
//   - Over TCP and TLS (a stream, which the read filter sees in arbitrary pieces), and for the few UDP
//     datagrams takeUDP leaves to sipgo, through a transport-layer hook (takeFromTransport) that gets each
//     parsed message on the connection's reader goroutine. sipgo still starts its goroutine and transaction
//     for such a MESSAGE; its handler does nothing and the transaction ends at once.
//
// Requests sipgo answers 400 itself (missing what it keys a transaction by, see takeable) are left to it.

var (
	messagePrefix  = []byte("MESSAGE ")
	responsePrefix = []byte("SIP/2.0 ")
)

// takeUDP is the transport read filter. It returns data for sipgo to handle, or nothing when it took the
// datagram itself: a MESSAGE arriving on one of our UDP listeners, or a response to a MESSAGE the gateway
// sent (udpclient.go).
func (g *Gateway) takeUDP(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if !strings.EqualFold(info.Transport, "udp") || info.LocalAddr == nil || info.RemoteAddr == nil {
		return data, nil
	}
	if bytes.HasPrefix(data, responsePrefix) {
		if g.udpc != nil && g.udpc.receive(data) {
			return nil, nil // a response to a MESSAGE the gateway sent (udpclient.go)
		}
		return data, nil
	}
	listeners := g.udpListeners.Load()
	if listeners == nil {
		return data, nil
	}
	l := (*listeners)[addrPort(info.LocalAddr)]
	if l == nil {
		return data, nil
	}
	if off := headControl(data); off >= 0 {
		g.refuseControl(l, info, data, off)
		return nil, nil
	}
	if !bytes.HasPrefix(data, messagePrefix) {
		return data, nil
	}
	msg, err := g.parser.ParseSIP(data)
	if errors.Is(err, sip.ErrParseReadBodyIncomplete) {
		// Content-Length says more than the datagram holds: RFC 3261 §18.3 asks for a 400, which sipgo, dropping
		// it, would not give; the sender would retransmit until its Timer F.
		if req, ok := msg.(*sip.Request); ok && req.Via() != nil && req.CallID() != nil && req.CSeq() != nil {
			req.SetTransport("UDP")
			req.SetSource(info.RemoteAddr.String())
			g.refuse(req, &udpResponder{conn: l.conn, dest: responseDest(req, info.RemoteAddr)}, 400, "Bad Request",
				"Content-Length is larger than the body the datagram carries")
			return nil, nil
		}
	}
	if err != nil {
		return data, nil // sipgo logs and drops it
	}
	req, ok := msg.(*sip.Request)
	if !ok || !takeable(req) {
		return data, nil
	}
	req.SetTransport("UDP")
	req.SetSource(info.RemoteAddr.String()) // rawio's addresses keep their text: no formatting per request
	r := &udpResponder{conn: l.conn, dest: responseDest(req, info.RemoteAddr)}

	g.takeMessage(req, r)
	return nil, nil
}

// refuseControl answers 400 to a request datagram with a control character at off in its header section
// (badinput.go), before sipgo sees it: sipgo's own answers (400 to a request it cannot key a transaction by,
// 200 to a CANCEL) would repeat it. One that does not parse as a request is left unanswered, as sipgo would.
func (g *Gateway) refuseControl(l *udpListener, info sip.TransportReadProps, data []byte, off int) {
	msg, err := g.parser.ParseSIP(data)
	req, ok := msg.(*sip.Request)
	if err != nil || !ok {
		g.log.Info("SIP datagram with a control character in its header section dropped", "source", info.RemoteAddr.String(), "err", err)
		return
	}
	req.SetTransport("UDP")
	req.SetSource(info.RemoteAddr.String())
	if req.IsAck() {
		g.log.Info("ACK dropped", "why", controlAt(data, off), "call_id", callID(req), "source", req.Source())
		return
	}
	dest := info.RemoteAddr
	if req.Via() != nil {
		dest = responseDest(req, info.RemoteAddr)
	}
	g.refuse(req, &udpResponder{conn: l.conn, dest: dest}, 400, "Bad Request", controlAt(data, off))
}

// udpListener is one of the gateway's SIP UDP sockets, as takeUDP sees it.
type udpListener struct {
	conn *sip.UDPConnection
}

// addrPort is a UDP address as a comparable value, an IPv4-mapped IPv6 address as IPv4 (as net.IP prints
// it); the zero AddrPort for anything else. It takes a *net.UDPAddr and rawio's addresses alike.
func addrPort(addr net.Addr) netip.AddrPort {
	ua, ok := addr.(interface{ AddrPort() netip.AddrPort }) // a nil *net.UDPAddr gives the zero AddrPort
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// takeFromTransport is the transport-layer hook: MESSAGEs over TCP and TLS (and UDP ones takeUDP left to
// sipgo) as the connection's reader parsed them, in arrival order.
func (g *Gateway) takeFromTransport(msg sip.Message) {
	req, ok := msg.(*sip.Request)
	if !ok || !takeable(req) {
		return
	}
	r := &connResponder{g: g, tp: g.ua.TransportLayer(), network: req.Transport(), source: req.Source()}
	if !sip.IsReliable(sip.NetworkToLower(req.Transport())) {
		r.dest = responseAddr(req)
	}
	if why := requestControl(req); why != "" {
		g.refuse(req, r, 400, "Bad Request", why) // badinput.go
		return
	}
	g.takeMessage(req, r)
}

// takeable says whether req is a MESSAGE the gateway takes from the transport: not one sipgo answers 400 to
// for missing what it keys a transaction by (the top Via, CSeq, Call-ID, and the From tag when the branch is
// not an RFC 3261 one). A broken From or To with an RFC 3261 branch is the gateway's to answer (400).
func takeable(req *sip.Request) bool {
	return req.Method == sip.MESSAGE && untakeable(req) == ""
}

// untakeable says what a MESSAGE lacks that takeable needs, or "".
func untakeable(req *sip.Request) string {
	via := req.Via()
	switch {
	case via == nil:
		return "MESSAGE without Via"
	case req.CSeq() == nil:
		return "MESSAGE without CSeq"
	case req.CallID() == nil:
		return "MESSAGE without Call-ID"
	}
	if b, _ := via.Params.Get("branch"); len(b) > len(sip.RFC3261BranchMagicCookie) && strings.HasPrefix(b, sip.RFC3261BranchMagicCookie) {
		return ""
	}
	if fromTag(req) == "" {
		return "MESSAGE without an RFC 3261 Via branch nor a From tag"
	}
	return ""
}

// responseDest is responseAddr for a request read from src: src itself when the response goes back to the
// port the request came from, as it mostly does (no address made or formatted for it). The rules live here.
func responseDest(req *sip.Request, src net.Addr) net.Addr {
	ap := addrPort(src)
	if !ap.IsValid() {
		return src
	}
	via := req.Via()
	if rport, ok := via.Params.Get("rport"); ok && rport == "" {
		return src
	}
	port := via.Port
	if port <= 0 {
		port = sip.DefaultUdpPort
	}
	if port == int(ap.Port()) {
		return src
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), uint16(port)))
}

// responseAddr is where a response to a request received over UDP goes (RFC 3261 §18.2.2 with RFC 3581):
// the source address of the request, to its source port when the top Via asked for rport, else to the
// Via's sent-by port.
func responseAddr(req *sip.Request) string {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return req.Source()
	}
	return responseDest(req, net.UDPAddrFromAddrPort(ap)).String()
}

// connResponder writes a response on the transport connection its request came in on (RFC 3261 §18.2.2: on
// a reliable transport, that connection), looked up when the response is ready; dest, for UDP, is where it
// goes.
type connResponder struct {
	g               *Gateway
	tp              *sip.TransportLayer
	network, source string
	dest            string
}

// respondTo writes the final response straight from req (appendResponse) on the TCP or TLS connection req came
// in on, or for UDP to dest; through sipgo on a connection of another kind.
func (r *connResponder) respondTo(req *sip.Request, code int, reason string, hdrs []sip.Header) error {
	conn, err := r.tp.GetConnection(r.network, r.source)
	if err != nil {
		return r.reopen(req, newResponse(req, code, reason, hdrs), err)
	}
	defer conn.TryClose()
	b := responseBuffers.Get().(*bytes.Buffer)
	defer responseBuffers.Put(b)
	b.Reset()
	appendResponse(b, req, code, reason, hdrs)
	switch c := conn.(type) {
	case *sip.TCPConnection: // TLS too
		if r.dest == "" {
			n, err := c.Write(b.Bytes())
			if err == nil && n != b.Len() {
				err = fmt.Errorf("wrote %d of a %d-byte response", n, b.Len())
			}
			return err
		}
	case *sip.UDPConnection:
		if ap, err := netip.ParseAddrPort(r.dest); err == nil {
			_, err = c.PacketConn.WriteTo(b.Bytes(), net.UDPAddrFromAddrPort(ap))
			return err
		}
	}
	return r.Respond(newResponse(req, code, reason, hdrs))
}

func (r *connResponder) Respond(res *sip.Response) error {
	conn, err := r.tp.GetConnection(r.network, r.source)
	if err != nil {
		return r.reopen(nil, res, err)
	}
	defer conn.TryClose()
	if u, ok := conn.(*sip.UDPConnection); ok && r.dest != "" {
		ap, err := netip.ParseAddrPort(r.dest)
		if err != nil {
			return err
		}
		return writeUDPResponse(u, net.UDPAddrFromAddrPort(ap), res)
	}
	if r.dest != "" {
		res.SetDestination(r.dest)
	}
	return conn.WriteMsg(res)
}

// reopen sends res over a new connection when the TCP or TLS connection its request came in on is closed (a
// MESSAGE held for its outcome, wait mode): to the request's source address and its top Via's port, or the
// transport's default (RFC 3261 §18.2.2), as the sender's listener is there. It dials in the background (the
// caller may be an MSRP connection's reader) and logs a failure; gone, why the connection was not found, is
// returned as it is for UDP, or when the gateway is closing. sipgo opens connections for requests only: it is
// asked for one as if for a request to that address.
func (r *connResponder) reopen(req *sip.Request, res *sip.Response, gone error) error {
	if !sip.IsReliable(sip.NetworkToLower(r.network)) {
		return gone
	}
	via := res.Via()
	if req != nil {
		via = req.Via()
	}
	host, _, err := net.SplitHostPort(r.source)
	if err != nil || via == nil {
		return gone
	}
	port := via.Port
	if port <= 0 {
		port = sip.DefaultPort(sip.NetworkToLower(r.network))
	}
	dest := net.JoinHostPort(host, strconv.Itoa(port))
	var cid string
	if c := res.CallID(); c != nil {
		cid = c.Value()
	}
	probe := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: host, Port: port})
	probe.SetTransport(r.network)
	probe.SetDestination(dest)
	probe.AppendHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: r.network, Host: host, Params: sip.NewParams()})
	if !r.g.goBackground(func() {
		ctx, cancel := context.WithTimeout(r.g.ctx, sip.Timer_B)
		defer cancel()
		conn, err := r.tp.ClientRequestConnection(ctx, probe)
		if err == nil {
			err = conn.WriteMsg(res)
			conn.TryClose()
		}
		if err != nil {
			r.g.log.Info("response not sent: its connection closed, and a new one failed", "code", res.StatusCode,
				"dest", dest, "err", err, "call_id", cid)
		}
	}) {
		return gone
	}
	return nil
}

// udpResponder writes responses through the listener a request came in on, to dest.
type udpResponder struct {
	conn *sip.UDPConnection
	dest net.Addr
}

func (r *udpResponder) Respond(res *sip.Response) error {
	return writeUDPResponse(r.conn, r.dest, res)
}

// respondTo writes a final response to req without building a sip.Response (response.go), whatever its size
// (writeUDPResponse).
func (r *udpResponder) respondTo(req *sip.Request, code int, reason string, hdrs []sip.Header) error {
	b := responseBuffers.Get().(*bytes.Buffer)
	defer responseBuffers.Put(b)
	b.Reset()
	appendResponse(b, req, code, reason, hdrs)
	_, err := r.conn.PacketConn.WriteTo(b.Bytes(), r.dest)
	return err
}

// writeUDPResponse writes res through conn to dest, whatever its size. sipgo's
// WriteMsg refuses a datagram over 1300 bytes, but that rule (RFC 3261 §18.1.1) is for requests, which can go
// over TCP instead; a response goes back over the transport its request came on (§18.2.2), and UDP carries
// it (fragmented if need be) up to the largest datagram.
func writeUDPResponse(conn *sip.UDPConnection, dest net.Addr, res *sip.Response) error {
	b := responseBuffers.Get().(*bytes.Buffer)
	defer responseBuffers.Put(b)
	b.Reset()
	res.StringWrite(b)
	_, err := conn.PacketConn.WriteTo(b.Bytes(), dest)
	return err
}

package gateway

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// MESSAGEs over UDP are the gateway's bulk traffic, and sipgo's way with a request is costly for them: a
// goroutine per request, a server transaction with its timers and a context, a handler that must stay until
// the answer, and requests racing each other to their session (they need the sequencer to stay in order).
// That was about half of the gateway's CPU per MESSAGE (docs/PERFORMANCE.md).
//
// So the gateway takes UDP MESSAGEs straight from its listeners, through sipgo's transport read filter: on
// the listener's reader goroutine, in the order they arrived, it parses the datagram (with sipgo's parser)
// and hands it to takeMessage, which routes and queues it without waiting; the final response is written
// back through the same socket when it is known. sipgo never sees these datagrams. What a server
// transaction would still do is done by the recent-request memory (recent.go): a retransmission is
// answered with the same response, never handled twice.
//
// Everything else goes to sipgo as before: other methods and responses, MESSAGEs over TCP and TLS, and
// datagrams this path does not take (unparsable, missing a header sipgo answers 400 for, or arriving on a
// socket that is not one of our listeners).

var (
	messagePrefix  = []byte("MESSAGE ")
	responsePrefix = []byte("SIP/2.0 ")
)

// takeUDP is the transport read filter. It returns data for sipgo to handle, or nothing when it took the
// datagram itself.
func (g *Gateway) takeUDP(info sip.TransportReadProps, data []byte) ([]byte, error) {
	if !strings.EqualFold(info.Transport, "udp") || info.LocalAddr == nil || info.RemoteAddr == nil {
		return data, nil
	}
	if bytes.HasPrefix(data, responsePrefix) {
		if g.udpc != nil && g.udpc.receive(data, g.parser) {
			return nil, nil // a response to a MESSAGE the gateway sent (udpclient.go)
		}
		return data, nil
	}
	if !bytes.HasPrefix(data, messagePrefix) {
		return data, nil
	}
	listeners := g.udpListeners.Load()
	if listeners == nil {
		return data, nil
	}
	conn := (*listeners)[info.LocalAddr.String()]
	if conn == nil {
		return data, nil
	}
	msg, err := g.parser.ParseSIP(data)
	if err != nil {
		return data, nil // sipgo logs and drops it
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Method != sip.MESSAGE || req.Via() == nil || req.CSeq() == nil || req.CallID() == nil || req.From() == nil || req.To() == nil {
		return data, nil // sipgo answers 400 to a request missing what a transaction needs
	}
	req.SetTransport("UDP")
	req.SetSource(info.RemoteAddr.String())
	r := &udpResponder{conn: conn, dest: responseAddr(req)}

	g.takeMessage(req, r, func() {}, nil)
	return nil, nil
}

// responseAddr is where a response to a request received over UDP goes (RFC 3261 §18.2.2 with RFC 3581):
// the source address of the request, to its source port when the top Via asked for rport, else to the
// Via's sent-by port.
func responseAddr(req *sip.Request) string {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return req.Source()
	}
	via := req.Via()
	if rport, ok := via.Params.Get("rport"); ok && rport == "" {
		return req.Source()
	}
	port := via.Port
	if port <= 0 {
		port = sip.DefaultUdpPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// udpResponder writes responses through the listener a request came in on.
type udpResponder struct {
	conn *sip.UDPConnection
	dest string
}

func (r *udpResponder) Respond(res *sip.Response) error {
	res.SetDestination(r.dest)
	return r.conn.WriteMsg(res)
}

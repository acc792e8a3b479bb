package gateway

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The MESSAGEs the gateway generates (from SENDs) are sent, over UDP to an IP address, with a client
// transaction of the gateway's own (RFC 3261 §17.1.2, non-INVITE over an unreliable transport), for the
// same reason MESSAGEs are received without sipgo's server transactions (udpintake.go): sipgo's client
// transaction costs a transaction store entry, a goroutine for every response, and a hop through two
// channels before the sender learns the outcome, and the send loops send one MESSAGE after the other
// (one outstanding per destination, RFC 3428 §8), so every hop delays the next message. Here the
// response's callback runs on the listener's reader goroutine and sends the next MESSAGE (sipside.go).
//
// The request goes out of the gateway's UDP listener, its Via naming the advertised contact with rport;
// the response comes back to that listener, where the read filter hands it here by its branch. Timer E
// retransmits (T1 doubling up to T2, T2 once a provisional response came), Timer F (64·T1) ends the
// transaction without a response. Anything else — TCP or TLS, a destination that needs DNS — goes through
// sipgo's client as before.

// clientBranchPrefix marks the Via branches of these transactions (RFC 3261 magic cookie first).
const clientBranchPrefix = "z9hG4bK-msrpgw-"

var clientBranchMark = []byte(clientBranchPrefix)

// responseParser parses the answers to these MESSAGEs. Their transaction needs the top Via (its branch) and
// the status; a challenge's WWW-Authenticate or Proxy-Authenticate is a generic header whatever the parser.
// The answer's From, To and Contact are never looked at, so they are kept as they came (generic headers):
// an answer whose Contact sipgo cannot parse still ends its transaction (parsed in full it was dropped, and
// the delivered message was reported failed after Timer F), and no URIs are parsed for every message (a third
// of the parsing time of MSRP→MESSAGE traffic).
var responseParser = sip.NewParser(sip.WithHeadersParsers(sip.HeadersParser{
	"via": headerParser("via"), "v": headerParser("via"),
	"cseq":    headerParser("cseq"),
	"call-id": headerParser("call-id"), "i": headerParser("call-id"),
	"content-length": headerParser("content-length"), "l": headerParser("content-length"),
}))

func headerParser(name string) sip.HeaderParser { return sip.DefaultHeadersParser()[name] }

type udpClient struct {
	pc   net.PacketConn // the UDP listener requests leave from
	host string         // Via sent-by
	port int

	mu     sync.Mutex
	txs    map[string]*clientTx // by Via branch
	closed bool
}

type clientTx struct {
	branch     string
	raw        []byte
	dest       net.Addr
	start      time.Time
	interval   time.Duration // Timer E
	proceeding bool          // a provisional response came: retransmit every T2
	done       bool
	timer      *time.Timer
	// cb is called once, outside the lock, with the final response, or with an error (Timer F:
	// sip.ErrTransactionTimeout; the client closed: errClientClosed).
	cb func(*sip.Response, error)
}

var errClientClosed = errors.New("UDP client closed")

func newUDPClient(pc net.PacketConn, host string, port int) *udpClient {
	return &udpClient{pc: pc, host: host, port: port, txs: make(map[string]*clientTx)}
}

// start sends req in a transaction of its own; done gets the outcome later, never before start returned.
// ok is false when req is not for this client (not UDP, or the next hop is not an IP address), or the
// request could not be sent (err says why): done is not called then.
func (c *udpClient) start(client *sipgo.Client, req *sip.Request, done func(*sip.Response, error)) (ok bool, err error) {
	dest, ok := udpNextHop(req)
	if !ok {
		return false, nil
	}
	// Our own Via, CSeq and Max-Forwards first, as sipgo would place them (RFC 3261 §8.1.1); sipgo then adds
	// whatever else a request lacks. A request sent again (with credentials) has a CSeq and no Via.
	branch := clientBranchPrefix + sip.GenerateTagN(16)
	if via := req.Via(); via != nil {
		via.Transport, via.Host, via.Port = "UDP", c.host, c.port
		via.Params.Add("branch", branch)
		if !via.Params.Has("rport") {
			via.Params.Add("rport", "")
		}
	} else {
		must := []sip.Header{&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
			Host: c.host, Port: c.port, Params: sip.HeaderParams{{K: "branch", V: branch}, {K: "rport"}}}}
		if req.CSeq() == nil {
			must = append(must, &sip.CSeqHeader{SeqNo: rand.Uint32() & 0x7FFF, MethodName: req.Method})
		}
		if req.MaxForwards() == nil {
			mf := sip.MaxForwardsHeader(70)
			must = append(must, &mf)
		}
		req.PrependHeader(must...)
	}
	if err := sipgo.ClientRequestBuild(client, req); err != nil {
		return false, err
	}
	var raw bytes.Buffer
	raw.Grow(len(req.Body()) + 768)
	writeRequest(&raw, req)
	t := &clientTx{branch: branch, raw: raw.Bytes(), dest: dest, start: time.Now(), interval: sip.T1, cb: done}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, errClientClosed
	}
	c.txs[branch] = t
	// Holding the lock until the write is done keeps a fast response from completing the transaction
	// before start has returned.
	t.timer = time.AfterFunc(sip.T1, func() { c.timerE(t) })
	_, err = c.pc.WriteTo(t.raw, dest)
	if err != nil {
		t.done = true
		t.timer.Stop()
		delete(c.txs, branch)
	}
	c.mu.Unlock()
	return err == nil, err
}

// close ends every pending transaction with errClientClosed; later starts fail.
func (c *udpClient) close() {
	c.mu.Lock()
	c.closed = true
	var ended []*clientTx
	for branch, t := range c.txs {
		t.done = true
		t.timer.Stop()
		delete(c.txs, branch)
		ended = append(ended, t)
	}
	c.mu.Unlock()
	for _, t := range ended {
		t.cb(nil, errClientClosed)
	}
}

// timerE retransmits the request, or ends the transaction once Timer F passed.
func (c *udpClient) timerE(t *clientTx) {
	c.mu.Lock()
	if t.done {
		c.mu.Unlock()
		return
	}
	elapsed := time.Since(t.start)
	if elapsed >= sip.Timer_F {
		t.done = true
		delete(c.txs, t.branch)
		c.mu.Unlock()
		t.cb(nil, sip.ErrTransactionTimeout)
		return
	}
	if t.proceeding {
		t.interval = sip.T2
	} else {
		t.interval = min(2*t.interval, sip.T2)
	}
	t.timer.Reset(min(t.interval, sip.Timer_F-elapsed))
	c.mu.Unlock()
	c.pc.WriteTo(t.raw, t.dest)
}

// receive takes a response read from a UDP listener. It reports whether the response belongs to one of
// this client's transactions (a late one, after the transaction ended, is dropped here too).
func (c *udpClient) receive(data []byte) bool {
	if !bytes.Contains(data, clientBranchMark) {
		return false
	}
	msg, err := responseParser.ParseSIP(data)
	if err != nil {
		return false
	}
	res, ok := msg.(*sip.Response)
	if !ok || res.Via() == nil {
		return false
	}
	branch, _ := res.Via().Params.Get("branch")
	if !strings.HasPrefix(branch, clientBranchPrefix) {
		return false
	}
	c.mu.Lock()
	t := c.txs[branch]
	switch {
	case t == nil || t.done:
	case res.StatusCode < 200:
		t.proceeding = true
	default:
		t.done = true
		t.timer.Stop()
		delete(c.txs, branch)
		c.mu.Unlock()
		t.cb(res, nil)
		return true
	}
	c.mu.Unlock()
	return true
}

// writeRequest writes req as sipgo's Request.StringWrite does (in full-length header form), with less
// garbage: the Via through writeVia, the Request-URI and the body written in place rather than through
// strings. A generated MESSAGE is serialised once, into a buffer of about its size.
func writeRequest(b *bytes.Buffer, req *sip.Request) {
	if req.CompactHeaders {
		req.StringWrite(b)
		return
	}
	b.WriteString(string(req.Method))
	b.WriteByte(' ')
	req.Recipient.StringWrite(b)
	b.WriteByte(' ')
	b.WriteString(req.SipVersion)
	b.WriteString("\r\n")
	for _, h := range req.Headers() {
		if via, ok := h.(*sip.ViaHeader); ok && via != nil {
			writeVia(b, via, "", false)
			continue
		}
		h.StringWrite(b)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(req.Body())
}

// fromListener makes sipgo send req out of the UDP listener this client uses, when req goes over UDP (INVITEs,
// and MESSAGEs that need DNS). Without it sipgo would open a socket of its own for a destination it has not
// heard from yet: an ephemeral port on every address, with the kernel's default receive buffer, which a
// firewall or NAT in front of the gateway does not expect, and which sipgo keeps open for good. The ACK and
// CANCEL of an INVITE inherit the address; a BYE is given it where it is made (indialog.go).
func (c *udpClient) fromListener(req *sip.Request) {
	if c == nil || !strings.EqualFold(req.Transport(), "UDP") {
		return
	}
	if la, ok := c.pc.LocalAddr().(*net.UDPAddr); ok {
		req.Laddr = sip.Addr{IP: la.IP, Port: la.Port}
	}
}

// udpNextHop is where a request goes when it goes over UDP to an IP address: the first Route (a loose
// router, the outbound proxy) or else the Request-URI.
func udpNextHop(req *sip.Request) (net.Addr, bool) {
	if !strings.EqualFold(req.Transport(), "UDP") {
		return nil, false
	}
	u := req.Recipient
	if r := req.Route(); r != nil {
		u = r.Address
	}
	if u.IsEncrypted() {
		return nil, false
	}
	if tp, ok := u.UriParams.Get("transport"); ok && !strings.EqualFold(tp, "udp") {
		return nil, false
	}
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return nil, false // a name: sipgo resolves it (RFC 3263)
	}
	port := u.Port
	if port == 0 {
		port = sip.DefaultUdpPort
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), true
}

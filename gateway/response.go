package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Final responses to MESSAGEs over UDP are the gateway's most frequent message. sipgo's
// NewResponseFromRequest copies every header it takes from the request and then serialises the copies;
// appendResponse writes the same response straight from the request's parsed headers.

// appendResponse writes the final response (code ≥ 200) to req as RFC 3261 §8.2.6 builds it: the request's
// Via headers in order (the top one with rport and received filled in when it asked for rport, RFC 3581),
// its Record-Route headers for a 2xx (as sipgo does), From, To with the gateway's tag, Call-ID and CSeq, then
// hdrs and an empty body. A From or To that did not parse is repeated as it came, a header holding a control
// character never.
func appendResponse(b *bytes.Buffer, req *sip.Request, code int, reason string, hdrs []sip.Header) {
	b.WriteString("SIP/2.0 ")
	b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(code), 10))
	b.WriteByte(' ')
	b.WriteString(reason)
	b.WriteString("\r\n")
	for i, h := range req.GetHeaders("Via") {
		start := b.Len()
		via, ok := h.(*sip.ViaHeader)
		if !ok || via == nil {
			writeHeader(b, h)
			dropIfControl(b, start)
			continue
		}
		var src string
		rport := false
		if i == 0 {
			src = req.Source()
			v, ok := via.Params.Get("rport")
			rport = ok && v == ""
		}
		writeVia(b, via, src, rport)
		dropIfControl(b, start)
	}
	if code < 300 {
		for _, h := range req.GetHeaders("Record-Route") {
			start := b.Len()
			writeHeader(b, h)
			dropIfControl(b, start)
		}
	}
	start := b.Len()
	if from := req.From(); from != nil {
		writeHeader(b, from)
	} else {
		writeHeader(b, req.GetHeader("From")) // as it came, when it did not parse (newSIPParser)
	}
	dropIfControl(b, start)
	start = b.Len()
	if to := req.To(); to != nil {
		to.StringWrite(b)
		if !to.Params.Has("tag") {
			b.WriteString(";tag=")
			b.Write(appendResponseTag(b.AvailableBuffer(), req))
		}
		b.WriteString("\r\n")
	} else {
		writeHeader(b, req.GetHeader("To"))
	}
	dropIfControl(b, start)
	start = b.Len()
	writeHeader(b, req.CallID())
	dropIfControl(b, start)
	start = b.Len()
	writeHeader(b, req.CSeq())
	dropIfControl(b, start)
	for _, h := range hdrs {
		writeHeader(b, h)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
}

// dropIfControl takes back the header line written to b from start when it holds a control character (other
// than HTAB and its closing CRLF): a request refused for one (badinput.go) may carry it in any header a
// response repeats, and repeated it would end the line early and start one the request chose.
func dropIfControl(b *bytes.Buffer, start int) {
	line := b.Bytes()[start:]
	line = line[:max(len(line)-2, 0)]
	for _, c := range line {
		if isControl(c) {
			b.Truncate(start)
			return
		}
	}
}

// writeVia writes a Via header line as sipgo renders it, without the copies and strings sipgo's rendering
// makes. With src, the address the request came from, it adds received, src's host, when the Via asked for
// rport or its sent-by host is not that address (RFC 3261 §18.2.1, RFC 3581 §4), and, with rport, fills in
// rport's value, src's port; received in place when the header has one, else at the end.
func writeVia(b *bytes.Buffer, via *sip.ViaHeader, src string, rport bool) {
	var host, port string
	fill, fillReceived := false, false
	if src != "" {
		var err error
		host, port, err = net.SplitHostPort(src)
		fill = err == nil && rport
		fillReceived = err == nil && (rport || receivedNeeded(via.Host, host))
	}
	b.WriteString("Via: ")
	b.WriteString(via.ProtocolName)
	b.WriteByte('/')
	b.WriteString(via.ProtocolVersion)
	b.WriteByte('/')
	b.WriteString(via.Transport)
	b.WriteByte(' ')
	writeHost(b, via.Host)
	if via.Port > 0 {
		b.WriteByte(':')
		b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(via.Port), 10))
	}
	received := false
	for _, kv := range via.Params {
		v := kv.V
		switch {
		case fill && kv.K == "rport":
			v = port
		case fillReceived && kv.K == "received":
			v, received = host, true
		}
		b.WriteByte(';')
		b.WriteString(kv.K)
		switch {
		case v == "":
		case strings.ContainsAny(v, " \t"): // as sipgo quotes values
			b.WriteString(`="`)
			b.WriteString(v)
			b.WriteByte('"')
		default:
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	if fillReceived && !received {
		b.WriteString(";received=")
		b.WriteString(host)
	}
	b.WriteString("\r\n")
}

// receivedNeeded says whether a Via whose sent-by host is viaHost, of a request from the address srcHost,
// gets received (RFC 3261 §18.2.1): when viaHost is a name, or another address.
func receivedNeeded(viaHost, srcHost string) bool {
	return strings.Trim(viaHost, "[]") != srcHost
}

// writeHost writes a Via sent-by host, an IPv6 address in brackets (RFC 3261 §25.1).
func writeHost(b *bytes.Buffer, host string) {
	if strings.IndexByte(host, ':') >= 0 && !strings.HasPrefix(host, "[") {
		b.WriteByte('[')
		b.WriteString(host)
		b.WriteByte(']')
		return
	}
	b.WriteString(host)
}

func writeHeader[H sip.Header](b *bytes.Buffer, h H) {
	var zero H
	if any(h) == any(zero) {
		return
	}
	h.StringWrite(b)
	b.WriteString("\r\n")
}

// tagSeed keys appendResponseTag: tags do not reveal the request, and differ between gateway runs.
var tagSeed = maphash.MakeSeed()

// tagSalt keeps tags of different gateway processes apart even if their seeds collided.
var tagSalt = func() [8]byte {
	var s [8]byte
	rand.Read(s[:])
	return s
}()

// appendResponseTag appends the gateway's To tag for a response to req to dst: derived from the request's
// transaction (Call-ID, From tag, CSeq, top Via branch), so every response to a request and to its
// retransmissions carries the same tag (RFC 3261 §8.2.6.2), without remembering it.
func appendResponseTag(dst []byte, req *sip.Request) []byte {
	var h maphash.Hash
	h.SetSeed(tagSeed)
	h.Write(tagSalt[:])
	if c := req.CallID(); c != nil {
		h.WriteString(c.Value())
	}
	h.WriteByte(0)
	h.WriteString(fromTag(req))
	h.WriteByte(0)
	if c := req.CSeq(); c != nil {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], c.SeqNo)
		h.Write(n[:])
		h.WriteString(string(c.MethodName))
	}
	h.WriteByte(0)
	if v := req.Via(); v != nil {
		br, _ := v.Params.Get("branch")
		h.WriteString(br)
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], h.Sum64())
	return hex.AppendEncode(dst, out[:])
}

var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

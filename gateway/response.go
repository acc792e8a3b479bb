package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"net"
	"strconv"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Final responses to MESSAGEs over UDP are the gateway's most frequent message. sipgo's
// NewResponseFromRequest copies every header it takes from the request and then serialises the copies;
// appendResponse writes the same response straight from the request's parsed headers.

// appendResponse writes the final response (code ≥ 200) to req as RFC 3261 §8.2.6 builds it: the request's
// Via headers in order (the top one with rport and received filled in when it asked for rport, RFC 3581),
// its Record-Route headers for a 2xx (as sipgo does), From, To with the gateway's tag, Call-ID and CSeq, then
// hdrs and an empty body.
func appendResponse(b *bytes.Buffer, req *sip.Request, code int, reason string, hdrs []sip.Header) {
	b.WriteString("SIP/2.0 ")
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(' ')
	b.WriteString(reason)
	b.WriteString("\r\n")
	for i, h := range req.GetHeaders("Via") {
		if via, ok := h.(*sip.ViaHeader); ok && i == 0 {
			if v, ok := via.Params.Get("rport"); ok && v == "" {
				via = via.Clone()
				host, port, _ := net.SplitHostPort(req.Source())
				via.Params.Add("rport", port)
				via.Params.Add("received", host)
				h = via
			}
		}
		writeHeader(b, h)
	}
	if code < 300 {
		for _, h := range req.GetHeaders("Record-Route") {
			writeHeader(b, h)
		}
	}
	writeHeader(b, req.From())
	if to := req.To(); to != nil {
		to.StringWrite(b)
		if !to.Params.Has("tag") {
			b.WriteString(";tag=")
			b.WriteString(responseTag(req))
		}
		b.WriteString("\r\n")
	}
	writeHeader(b, req.CallID())
	writeHeader(b, req.CSeq())
	for _, h := range hdrs {
		writeHeader(b, h)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
}

func writeHeader[H sip.Header](b *bytes.Buffer, h H) {
	var zero H
	if any(h) == any(zero) {
		return
	}
	h.StringWrite(b)
	b.WriteString("\r\n")
}

// tagSeed keys responseTag: tags do not reveal the request, and differ between gateway runs.
var tagSeed = maphash.MakeSeed()

// tagSalt keeps tags of different gateway processes apart even if their seeds collided.
var tagSalt = func() [8]byte {
	var s [8]byte
	rand.Read(s[:])
	return s
}()

// responseTag is the gateway's To tag for a response to req: derived from the request's transaction (Call-ID,
// From tag, CSeq, top Via branch), so every response to a request and to its retransmissions carries the
// same tag (RFC 3261 §8.2.6.2), without remembering it.
func responseTag(req *sip.Request) string {
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
	return hex.EncodeToString(out[:])
}

var responseBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

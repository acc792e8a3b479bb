package gateway

import (
	"bytes"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzSIPParser: the gateway's SIP parser (sipgo's, keeping a From or To it cannot parse as a plain header)
// and what the gateway reads first from every request — address checks, the repeat key, Call-ID and tags —
// never panic, whatever the bytes; a request the parser takes either has usable From/To or is refused. The
// control-character checks agree (badinput.go): the datagram's bytes hold one wherever the parsed request
// does (no escape is decoded into one), and the response to a request that passes is made of whole
// CRLF-ended lines, repeating nothing that could start a header.
func FuzzSIPParser(f *testing.F) {
	for _, seed := range []string{
		"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
		"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: garbage;tag=x\r\nTo: <sip:bob@127.0.0.1\r\nCall-ID: c1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
		"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK2\r\nf: <sip:a@b>;tag=1\r\nt: \r\ni: x\r\nCSeq: 2 INVITE\r\nl: 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-msrpgw-x\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: y\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	p := newSIPParser()
	recent := newRecentRequests()
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := p.ParseSIP(data)
		if err != nil {
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return
		}
		problem := addressProblem(req, true)
		_, _ = recent.key(req)
		_, _, _ = callID(req), fromTag(req), toTag(req)
		if problem == "" && (req.From() == nil || req.To() == nil) {
			t.Fatalf("a request without a usable From or To passes the address check:\n%s", data)
		}
		raw, parsed := headControl(data), requestControl(req)
		if parsed != "" && raw < 0 {
			t.Fatalf("the parsed request has %s, its bytes none:\n%q", parsed, data)
		}
		if parsed != "" {
			return
		}
		// Bytes with a control character the parsed request does not hold (in a line sipgo dropped) are
		// refused over UDP; whatever the gateway could repeat of them is checked below.
		var b bytes.Buffer
		appendResponse(&b, req, 400, "Bad Request", nil)
		head, _, _ := bytes.Cut(b.Bytes(), []byte("\r\n\r\n"))
		for _, line := range bytes.Split(head, []byte("\r\n")) {
			for _, c := range line {
				if isControl(c) {
					t.Fatalf("response line %q holds control character 0x%02x; request:\n%q", line, c, data)
				}
			}
		}
	})
}

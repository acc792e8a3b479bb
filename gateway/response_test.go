package gateway

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func parseRequest(t *testing.T, raw, source string) *sip.Request {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP([]byte(strings.ReplaceAll(raw, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("parse request: %v", err)
	}
	req := msg.(*sip.Request)
	req.SetSource(source)
	req.SetTransport("UDP")
	return req
}

func parseResponse(t *testing.T, b []byte) *sip.Response {
	t.Helper()
	msg, err := sip.NewParser().ParseSIP(b)
	if err != nil {
		t.Fatalf("parse response: %v\n%s", err, b)
	}
	return msg.(*sip.Response)
}

func headerValues(m sip.Message, name string) []string {
	var vs []string
	for _, h := range m.GetHeaders(name) {
		vs = append(vs, h.Value())
	}
	return vs
}

const responseTestRequest = `MESSAGE sip:bob@127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK-1;rport
Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bK-proxy;received=127.0.0.3
Record-Route: <sip:127.0.0.3;lr>
Max-Forwards: 69
From: "Alice" <sip:alice@127.0.0.2>;tag=a1
To: <sip:bob@127.0.0.1>
Call-ID: c1@127.0.0.2
CSeq: 7 MESSAGE
Content-Type: text/plain
Content-Length: 2

hi`

// appendResponse must write what sipgo's NewResponseFromRequest writes, header for header, apart from the
// To tag's value.
func TestAppendResponseMatchesSipgo(t *testing.T) {
	compact := strings.NewReplacer("Via:", "v:", "From:", "f:", "To:", "t:", "Call-ID:", "i:").Replace(responseTestRequest)
	tagged := strings.Replace(responseTestRequest, "To: <sip:bob@127.0.0.1>", "To: <sip:bob@127.0.0.1>;tag=b2", 1)
	noRport := strings.Replace(responseTestRequest, ";rport", "", 1)
	v6 := strings.Replace(responseTestRequest, "127.0.0.2:5062;branch=z9hG4bK-1;rport", "[2001:db8::2]:5062;branch=z9hG4bK-1;rport", 1)
	received := strings.Replace(responseTestRequest, ";branch=z9hG4bK-1;rport", ";received=192.0.2.9;rport;branch=z9hG4bK-1;x=\"a b\"", 1)
	noPort := strings.Replace(responseTestRequest, "127.0.0.2:5062;branch", "127.0.0.2;branch", 1)
	for _, tc := range []struct {
		name, raw string
		code      int
		reason    string
		hdrs      []sip.Header
	}{
		{"200 with rport and Record-Route", responseTestRequest, 200, "OK", nil},
		{"202 without rport", noRport, 202, "Accepted", nil},
		{"404: no Record-Route", responseTestRequest, 404, "Not Found", nil},
		{"503 with headers", responseTestRequest, 503, "Service Unavailable",
			[]sip.Header{sip.NewHeader("Retry-After", "5"), sip.NewHeader("Warning", `399 127.0.0.1 "draining"`)}},
		{"in-dialog To tag kept", tagged, 200, "OK", nil},
		{"compact header names", compact, 415, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", "text/plain")}},
		{"IPv6 sent-by", v6, 200, "OK", nil},
		{"received already there, quoted parameter", received, 200, "OK", nil},
		{"sent-by without a port", noPort, 200, "OK", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := parseRequest(t, tc.raw, "127.0.0.2:40000")
			var b bytes.Buffer
			appendResponse(&b, req, tc.code, tc.reason, tc.hdrs)
			got := parseResponse(t, b.Bytes())

			ref := sip.NewResponseFromRequest(req, tc.code, tc.reason, nil)
			for _, h := range tc.hdrs {
				ref.AppendHeader(h)
			}
			want := parseResponse(t, []byte(ref.String()))

			if got.StatusCode != want.StatusCode || got.Reason != want.Reason {
				t.Errorf("status %d %s, want %d %s", got.StatusCode, got.Reason, want.StatusCode, want.Reason)
			}
			for _, name := range []string{"Via", "Record-Route", "From", "Call-ID", "CSeq", "Retry-After", "Warning", "Accept", "Content-Length"} {
				if g, w := headerValues(got, name), headerValues(want, name); strings.Join(g, "\n") != strings.Join(w, "\n") {
					t.Errorf("%s: %q, want %q", name, g, w)
				}
			}
			gt, wt := got.To(), want.To()
			gTag, gok := gt.Params.Get("tag")
			wTag, _ := wt.Params.Get("tag")
			if !gok || gTag == "" {
				t.Errorf("To without a tag: %s", gt.Value())
			}
			if reqTag, ok := req.To().Params.Get("tag"); ok && (gTag != reqTag || wTag != reqTag) {
				t.Errorf("To tag %q (sipgo %q), want the request's %q", gTag, wTag, reqTag)
			}
			if gt.Address.String() != wt.Address.String() || gt.DisplayName != wt.DisplayName {
				t.Errorf("To %s, want %s", gt.Value(), wt.Value())
			}
			if len(got.Body()) != 0 || len(got.GetHeaders("Content-Length")) != 1 {
				t.Errorf("body %q, Content-Length %v", got.Body(), headerValues(got, "Content-Length"))
			}
			if tc.code == 200 && tc.raw == responseTestRequest {
				if v := got.Via(); !strings.Contains(v.Value(), "rport=40000") || !strings.Contains(v.Value(), "received=127.0.0.2") {
					t.Errorf("top Via %s: rport and received not filled in (RFC 3581)", v.Value())
				}
			}
		})
	}
}

// Every response to a request, and to its retransmissions, carries the same To tag (RFC 3261 §8.2.6.2);
// another request gets another.
func TestResponseTagStable(t *testing.T) {
	responseTag := func(req *sip.Request) string { return string(appendResponseTag([]byte("x"), req)[1:]) }
	first := responseTag(parseRequest(t, responseTestRequest, "127.0.0.2:40000"))
	again := responseTag(parseRequest(t, responseTestRequest, "127.0.0.2:40000"))
	next := responseTag(parseRequest(t, strings.Replace(responseTestRequest, "CSeq: 7", "CSeq: 8", 1), "127.0.0.2:40000"))
	if first != again {
		t.Errorf("retransmission tagged %s, first %s", again, first)
	}
	if first == next || len(first) != 16 {
		t.Errorf("tags %s and %s for different requests", first, next)
	}
}

// writeVia renders a Via byte for byte as sipgo does when it has nothing to fill in, whatever its fields.
func TestWriteViaMatchesSipgo(t *testing.T) {
	for _, via := range []*sip.ViaHeader{
		{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.2", Port: 5062,
			Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK-1"}, {K: "rport"}}},
		{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TCP", Host: "2001:db8::2", Port: 5060,
			Params: sip.HeaderParams{{K: "branch", V: "z9hG4bK-2"}}},
		{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "TLS", Host: "[2001:db8::3]",
			Params: sip.HeaderParams{{K: "x", V: "a b"}, {K: "received", V: "192.0.2.1"}}},
		{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "gw.example.com"},
	} {
		var got bytes.Buffer
		writeVia(&got, via, "", false)
		var want strings.Builder
		via.StringWrite(&want)
		if got.String() != want.String()+"\r\n" {
			t.Errorf("writeVia %q, sipgo %q", got.String(), want.String())
		}
	}
}

// RFC 3261 §18.2.1: a server transport MUST add received to the top Via of a request whose sent-by host is
// a domain name or differs from the packet's source address, rport or not; the response repeats that Via.
func TestResponseViaHasReceived(t *testing.T) {
	for _, method := range []string{"MESSAGE", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			h := newHarness(t, nil)
			u := newRawUDP(t)
			_, port, _ := net.SplitHostPort(u.addr())
			via := "phone.invalid:" + port // the response goes to the source address and this port: u
			ruri := "sip:bob@" + h.udp()
			req := message(ruri, via, "z9hG4bK-recv-"+method, "sip:alice@127.0.0.1", "recv-"+method+"-"+u.addr(), "text/plain", "hi")
			req = strings.Replace(req, "MESSAGE", method, 1)
			req = strings.Replace(req, "CSeq: 1 MESSAGE", "CSeq: 1 "+method, 1)
			res := u.exchange(h.udp(), req)
			v := res.Via()
			if got, ok := v.Params.Get("received"); !ok || got != "127.0.0.1" {
				t.Fatalf("%d to %s: top Via %q, want received=127.0.0.1 (sent-by is a domain name)", res.StatusCode, method, v.Value())
			}
		})
	}
}

package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// This file is SIP input the transport must not lose (SPEC §4, §8): datagrams of any size a UDP datagram
// can have, requests whose From or To does not parse, and answers too long for the request rule of RFC 3261
// §18.1.1.

// A MESSAGE over UDP is answered whatever its size: sipgo's read buffer holds any datagram, so one of
// 32 KiB and more is not truncated and dropped. Over gateway.max_message_size it gets 413, under it is
// accepted.
func TestLargeMessageOverUDPAnswered(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "large-bob")
	alice := newRawUDP(t)
	max := int(h.cfg.Gateway.MaxMessageSize)
	if max != 32768 {
		t.Fatalf("the cases assume the default gateway.max_message_size 32768, have %d", max)
	}
	cases := []struct {
		body int
		want int
	}{
		{max - 1, 202},
		{32768, 202}, // sipgo's default read buffer, which truncated the datagram
		{max + 1, 413},
	}
	for i, c := range cases {
		raw := message(bob.URI, alice.addr(), fmt.Sprintf("z9hG4bKlarge%d", i), "sip:large-alice@127.0.0.1",
			fmt.Sprintf("large-%d", i), "text/plain", strings.Repeat("x", c.body))
		if res := alice.exchange(h.udp(), raw); res.StatusCode != c.want {
			t.Fatalf("body of %d bytes (datagram of %d): %d %s, want %d", c.body, len(raw), res.StatusCode, res.Reason, c.want)
		}
	}
	cs := bob.WaitInvite()
	for _, want := range []int{max - 1, 32768} {
		if m := cs.Recv(); len(m.Body) != want {
			t.Fatalf("an accepted MESSAGE arrived with %d bytes, want %d", len(m.Body), want)
		}
	}
}

// badAddressRequest is a request's text (lines ending in \n, CRLF once written) whose From and To are as
// given.
func badAddressRequest(method, transport, via, branch, from, to, callID, extra, body string) string {
	return fmt.Sprintf("%s sip:broken-bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/%s %s;branch=%s\nMax-Forwards: 70\n"+
		"From: %s\nTo: %s\nCall-ID: %s\nCSeq: 1 %s\n%sContent-Length: %d\n\n%s",
		method, transport, via, branch, from, to, callID, method, extra, len(strings.ReplaceAll(body, "\n", "\r\n")), body)
}

// want400 checks the answer to a request with a broken From or To: 400 with a Warning naming the header,
// the request's From as it came.
func want400(t *testing.T, name string, res *sip.Response, header, from string) {
	t.Helper()
	w := res.GetHeader("Warning")
	if res.StatusCode != 400 || w == nil || !strings.Contains(w.Value(), header) {
		t.Fatalf("%s: answered %d %s with Warning %v, want 400 with a Warning about %s", name, res.StatusCode, res.Reason, w, header)
	}
	if f := res.GetHeader("From"); f == nil || f.Value() != from {
		t.Fatalf("%s: the answer's From is %v, want the request's %q", name, f, from)
	}
}

// A request whose From or To sipgo cannot parse reaches the gateway (newSIPParser) and is answered 400 with a
// Warning saying what is wrong (SPEC §8), whatever its method; nothing is set up.
func TestBrokenFromOrToOverUDP(t *testing.T) {
	h := newHarness(t, nil)
	peer := newRawUDP(t)
	okFrom, okTo := "<sip:broken-alice@127.0.0.1>;tag=a1", "<sip:broken-bob@127.0.0.1>"
	sdpOffer := "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=message 9 TCP/MSRP *\n" +
		"a=accept-types:text/plain\na=path:msrp://127.0.0.1:9/brokenpath;tcp\na=setup:active\n"
	cases := []struct {
		name, method, from, to, extra, body, header string
	}{
		{"MESSAGE From garbage", "MESSAGE", "garbage;tag=x", okTo, "Content-Type: text/plain\n", "hi", "From"},
		{"MESSAGE From unclosed", "MESSAGE", "<sip:broken-alice@127.0.0.1;tag=x", okTo, "Content-Type: text/plain\n", "hi", "From"},
		{"MESSAGE To empty", "MESSAGE", okFrom, "", "Content-Type: text/plain\n", "hi", "To"},
		{"MESSAGE To unclosed", "MESSAGE", okFrom, "<sip:broken-bob@127.0.0.1", "Content-Type: text/plain\n", "hi", "To"},
		{"INVITE From garbage", "INVITE", "garbage;tag=x", okTo, "Contact: <sip:broken-alice@127.0.0.1>\nContent-Type: application/sdp\n", sdpOffer, "From"},
		{"INVITE To empty", "INVITE", okFrom, "", "Contact: <sip:broken-alice@127.0.0.1>\n", "", "To"},
		{"BYE From garbage", "BYE", "garbage;tag=x", okTo + ";tag=b1", "", "", "From"},
		{"OPTIONS To unclosed", "OPTIONS", okFrom, "<sip:broken-bob@127.0.0.1", "", "", "To"},
	}
	for i, c := range cases {
		raw := badAddressRequest(c.method, "UDP", peer.addr(), fmt.Sprintf("z9hG4bKbroken%d", i), c.from, c.to,
			fmt.Sprintf("broken-%d", i), c.extra, c.body)
		want400(t, c.name, peer.exchange(h.udp(), raw), c.header, c.from)
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after requests with broken From or To", n)
	}
	// A valid MESSAGE is parsed and served as ever.
	bob := testpeer.NewClient(t, "broken-bob")
	valid := message(bob.URI, peer.addr(), "z9hG4bKbrokenvalid", "sip:broken-alice@127.0.0.1", "broken-valid", "text/plain", "fine")
	if res := peer.exchange(h.udp(), valid); res.StatusCode != 202 {
		t.Fatalf("valid MESSAGE: %d %s", res.StatusCode, res.Reason)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "fine" {
		t.Fatalf("got %q", m.Body)
	}
}

// Over TCP a broken From or To fails only its request: sipgo used to drop the connection with everything on
// it. The request gets 400, and the next one on the same connection is served.
func TestBrokenFromOverTCPKeepsConnection(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "tcpbroken-bob")
	nc, err := net.Dial("tcp", h.gw.SIPAddr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	local := nc.LocalAddr().String()
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	broken := badAddressRequest("MESSAGE", "TCP", local, "z9hG4bKtcpbroken1", "garbage;tag=x", "<"+bob.URI+">",
		"tcpbroken-1", "Content-Type: text/plain\n", "hi")
	valid := strings.Replace(message(bob.URI, local, "z9hG4bKtcpbroken2", "sip:tcpbroken-alice@127.0.0.1",
		"tcpbroken-2", "text/plain", "after"), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	if _, err := io.WriteString(nc, crlf(broken)+crlf(valid)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(waitFor))
	stream := newSIPParser().NewSIPStream()
	answers := map[string]*sip.Response{}
	buf := make([]byte, 8192)
	for len(answers) < 2 {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("after %d answers: %v", len(answers), err)
		}
		if err := stream.ParseSIPStream(buf[:n], func(m sip.Message) {
			if res, ok := m.(*sip.Response); ok && res.StatusCode >= 200 {
				answers[res.CallID().Value()] = res
			}
		}); err != nil && !errors.Is(err, sip.ErrParseSipPartial) {
			t.Fatal(err)
		}
	}
	want400(t, "broken MESSAGE", answers["tcpbroken-1"], "From", "garbage;tag=x")
	if res := answers["tcpbroken-2"]; res == nil || res.StatusCode != 202 {
		t.Fatalf("the MESSAGE after the broken one: %v", res)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
}

// An answer over 1300 bytes still goes back over UDP (RFC 3261 §18.2.2): the 1300-byte rule of §18.1.1 is
// for requests. Here a MESSAGE came through eight proxies, each adding a long Via the answer repeats.
func TestLongResponseOverUDP(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "longres-bob")
	peer := newRawUDP(t)
	raw := message(bob.URI, peer.addr()+";rport", "z9hG4bKlongres", "sip:longres-alice@127.0.0.1", "longres-1", "text/plain", "hi")
	var vias strings.Builder
	for i := range 8 {
		fmt.Fprintf(&vias, "Via: SIP/2.0/UDP proxy%d.example.net:5060;branch=z9hG4bKhop%d%s\n", i, i, strings.Repeat("p", 100))
	}
	raw = strings.Replace(raw, "\nMax-Forwards:", "\n"+vias.String()+"Max-Forwards:", 1)
	peer.write(h.udp(), raw)
	buf := make([]byte, 65535)
	peer.pc.SetReadDeadline(time.Now().Add(waitFor))
	n, _, err := peer.pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	res, err := newSIPParser().ParseSIP(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res.(*sip.Response); !ok || r.StatusCode != 202 || len(r.GetHeaders("Via")) != 9 || n <= 1300 {
		t.Fatalf("got %d bytes: %v, want a 202 of more than 1300 bytes with the request's 9 Vias", n, res)
	}
	if m := bob.WaitInvite().Recv(); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
}

// The same for answers sent through sipgo's server transactions (INVITE, BYE, OPTIONS): sipgo refuses any UDP
// message over 1300 bytes unless told otherwise (ConfigureSIPStack), and an INVITE that came through a few
// proxies would then never be answered.
func TestLongResponseThroughSipgoOverUDP(t *testing.T) {
	h := newHarness(t, nil)
	peer := newRawUDP(t)
	var vias strings.Builder
	for i := range 8 {
		fmt.Fprintf(&vias, "Via: SIP/2.0/UDP proxy%d.example.net:5060;branch=z9hG4bKhop%d%s\n", i, i, strings.Repeat("p", 100))
	}
	peer.write(h.udp(), fmt.Sprintf("OPTIONS sip:gw@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bKlongopt\n%s"+
		"Max-Forwards: 70\nFrom: <sip:probe@127.0.0.1>;tag=p1\nTo: <sip:gw@127.0.0.1>\nCall-ID: longopt-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
		peer.addr(), vias.String()))
	res := peer.final()
	if res.StatusCode != 200 || len(res.GetHeaders("Via")) != 9 || len(res.String()) <= 1300 {
		t.Fatalf("got %d with %d Vias, %d bytes; want a 200 of more than 1300 bytes with the request's 9 Vias", res.StatusCode, len(res.GetHeaders("Via")), len(res.String()))
	}
}

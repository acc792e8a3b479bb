package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/event"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// rawText is a request's text with lines ending in CRLF, then "{LF}" and "{NUL}" turned into a bare LF and a
// NUL inside a line: what sipgo keeps in a header value.
func rawText(s string) []byte {
	s = strings.ReplaceAll(s, "\n", "\r\n")
	return []byte(strings.NewReplacer("{LF}", "\n", "{NUL}", "\x00").Replace(s))
}

// checkNoInjection fails unless raw, a response, is 400 with a Warning about header, and its header section
// holds no control character but the CRLFs ending its lines: nothing of the request's bad value is repeated.
func checkNoInjection(t *testing.T, name string, raw []byte, header string) {
	t.Helper()
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("SIP/2.0 400 ")) {
		t.Fatalf("%s: answered %q, want 400", name, statusLine(head))
	}
	if bytes.Contains(head, []byte("X-Evil")) || bytes.ContainsAny(bytes.ReplaceAll(head, []byte("\r\n"), nil), "\n\r\x00") {
		t.Fatalf("%s: the answer repeats the bad value:\n%q", name, head)
	}
	warn := ""
	for _, l := range strings.Split(string(head), "\r\n") {
		if strings.HasPrefix(l, "Warning: ") {
			warn = l
		}
	}
	if !strings.Contains(warn, header) {
		t.Fatalf("%s: Warning %q, want one about %s", name, warn, header)
	}
}

func statusLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(l)
}

// badValueCases are requests with a control character in a header value (or the Request-URI), and the
// part the Warning must name; via is the Via's sent-by.
func badValueCases(transport, via string) []struct{ name, text, header string } {
	req := func(method, ruri, from, callID, cseq, extra string) string {
		return fmt.Sprintf("%s %s SIP/2.0\nVia: SIP/2.0/%s %s;branch=z9hG4bK%s\nMax-Forwards: 70\n"+
			"From: %s\nTo: <sip:ctl-bob@127.0.0.1>\nCall-ID: %s\nCSeq: %s\n%sContent-Length: 2\n\nhi",
			method, ruri, transport, via, strings.Split(callID, "{")[0], from, callID, cseq, extra)
	}
	const ruri, from, ct = "sip:ctl-bob@127.0.0.1", "<sip:ctl-alice@127.0.0.1>;tag=a1", "Content-Type: text/plain\n"
	return []struct{ name, text, header string }{
		{"OPTIONS unparsed From", req("OPTIONS", ruri, "garbage{LF}X-Evil: injected", transport+"ctl-1", "1 OPTIONS", ""), "From"},
		{"MESSAGE unparsed From", req("MESSAGE", ruri, "garbage{LF}X-Evil: injected", transport+"ctl-2", "1 MESSAGE", ct), "From"},
		{"MESSAGE From tag", req("MESSAGE", ruri, from+"{LF}X-Evil: injected", transport+"ctl-3", "1 MESSAGE", ct), "From"},
		{"MESSAGE Call-ID", req("MESSAGE", ruri, from, transport+"ctl-4{LF}X-Evil: injected", "1 MESSAGE", ct), "Call-ID"},
		{"OPTIONS CSeq", req("OPTIONS", ruri, from, transport+"ctl-5", "1 OPTIONS{LF}X-Evil: injected", ""), "CSeq"},
		{"BYE extension header NUL", req("BYE", ruri, from, transport+"ctl-6", "1 BYE", "X-Note: a{NUL}X-Evil: b\n"), "X-Note"},
		{"MESSAGE Request-URI", req("MESSAGE", "sip:ctl-bob{LF}X-Evil:@127.0.0.1", from, transport+"ctl-7", "1 MESSAGE", ct), "Request-URI"},
		{"unknown method Via", strings.Replace(req("FOO", ruri, from, transport+"ctl-8", "1 FOO", ""), ";branch=", ";x=1{LF}X-Evil: v;branch=", 1), "Via"},
	}
}

// A request with a control character other than HTAB in a header value (sipgo keeps a bare LF or a NUL
// there) is refused 400 with a Warning naming the header, whatever its method, and the answer repeats
// nothing of it: a repeated bare LF would start a header of the sender's choosing.
func TestControlCharacterRefusedOverUDP(t *testing.T) {
	h := newHarness(t, nil)
	peer := newRawUDP(t)
	to, err := net.ResolveUDPAddr("udp", h.udp())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range badValueCases("UDP", peer.addr()) {
		if _, err := peer.pc.WriteTo(rawText(c.text), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		for {
			peer.pc.SetReadDeadline(time.Now().Add(waitFor))
			n, _, err := peer.pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 1")) {
				continue
			}
			checkNoInjection(t, c.name, buf[:n], c.header)
			break
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after refused requests", n)
	}
}

// The same over TCP, where the request reaches the gateway parsed (takeFromTransport, sipgo's handlers).
func TestControlCharacterRefusedOverTCP(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range badValueCases("TCP", "127.0.0.1:9") {
		nc, err := net.Dial("tcp", h.gw.SIPAddr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(c.text, "127.0.0.1:9", nc.LocalAddr().String(), 1)
		if _, err := nc.Write(rawText(text)); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(waitFor))
		var got []byte
		buf := make([]byte, 8192)
		for {
			n, err := nc.Read(buf)
			got = append(got, buf[:n]...)
			// Skip provisional answers; a final one is whole once its empty line is in.
			for bytes.HasPrefix(got, []byte("SIP/2.0 1")) && bytes.Contains(got, []byte("\r\n\r\n")) {
				_, got, _ = bytes.Cut(got, []byte("\r\n\r\n"))
			}
			if len(got) > 0 && bytes.Contains(got, []byte("\r\n\r\n")) {
				break
			}
			if err != nil {
				if err == io.EOF {
					break
				}
				t.Fatalf("%s: %v (read %q)", c.name, err, got)
			}
		}
		nc.Close()
		checkNoInjection(t, c.name, got, c.header)
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after refused requests", n)
	}
}

// A MESSAGE whose Request-URI, From or To URI holds a space, '<', '>' or '"' (sipgo's URI parser takes
// them) is refused 400: the gateway copies these into the INVITE it sends and the MESSAGEs it sends back,
// where they would break the header or add parameters of the sender's choosing. No session is made.
func TestMessageURIWithDelimitersRefused(t *testing.T) {
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "uri-bob")
	peer := newRawUDP(t)
	cases := []struct{ name, ruri, from, header string }{
		{"space in From", bob.URI, "<sip:uri alice@127.0.0.1>;tag=a1", "From URI"},
		{"'>' in From", bob.URI, "sip:uri-alice>x@127.0.0.1;tag=a1", "From URI"},
		{"'\"' in Request-URI", strings.Replace(bob.URI, "uri-bob", `uri"bob`, 1), "<sip:uri-alice@127.0.0.1>;tag=a1", "Request-URI"},
	}
	for i, c := range cases {
		text := fmt.Sprintf("MESSAGE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKuri%d\nMax-Forwards: 70\n"+
			"From: %s\nTo: <%s>\nCall-ID: uri-%d\nCSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: 2\n\nhi",
			c.ruri, peer.addr(), i, c.from, bob.URI, i)
		res := peer.exchange(h.udp(), text)
		w := res.GetHeader("Warning")
		if res.StatusCode != 400 || w == nil || !strings.Contains(w.Value(), c.header) {
			t.Fatalf("%s: answered %d %s, Warning %v; want 400 about the %s", c.name, res.StatusCode, res.Reason, w, c.header)
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions after refused MESSAGEs", n)
	}
}

// requestControl finds a control character in the request line's method and version too, as the UDP intake's
// scan of the bytes does (FuzzSIPParser found both missing).
func TestRequestControlInRequestLine(t *testing.T) {
	p := newSIPParser()
	for _, raw := range []string{
		"OPT\x01IONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		"OPTIONS sip:bob@127.0.0.1 SIP/2.0\x01\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
	} {
		msg, err := p.ParseSIP([]byte(raw))
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if got := requestControl(msg.(*sip.Request)); got == "" {
			t.Fatalf("%q: no control character found", raw)
		}
	}
}

// SPEC §8 "Bad SIP input ... → 400" and §5 "never loses a failure silently": a MESSAGE that lacks its
// Call-ID is malformed (RFC 3261 §8.1.1: mandatory) and must get a final response (400 with a Warning), and the
// refusal be logged and counted, as any refused request is. sipgo keys its transaction by Via branch and
// method, so it passes such a MESSAGE to the gateway's onMessage, which does nothing (takeable() leaves it to
// sipgo): no answer at all, the sender retransmits for 32 s and times out, and nothing is logged or counted.
func TestMessageWithoutCallIDAnswered(t *testing.T) {
	h := newHarness(t, nil)
	peer := newRawUDP(t)
	raw := "MESSAGE sip:nocid-bob@127.0.0.1 SIP/2.0\n" +
		"Via: SIP/2.0/UDP " + peer.addr() + ";branch=z9hG4bKnocallid1\n" +
		"Max-Forwards: 70\n" +
		"From: <sip:nocid-alice@127.0.0.1>;tag=a1\n" +
		"To: <sip:nocid-bob@127.0.0.1>\n" +
		"CSeq: 1 MESSAGE\n" +
		"Content-Type: text/plain\n" +
		"Content-Length: 2\n\nhi"
	peer.write(h.udp(), raw)
	peer.pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, _, err := peer.pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("MESSAGE without Call-ID: no response at all within 3 s (%v); want 400 with a Warning", err)
	}
	status := strings.SplitN(string(buf[:n]), "\r\n", 2)[0]
	if !strings.HasPrefix(status, "SIP/2.0 400") {
		t.Fatalf("MESSAGE without Call-ID answered %q, want 400", status)
	}
	if n := h.events.count(event.RequestRefused); n == 0 {
		t.Fatalf("MESSAGE without Call-ID answered %q but not counted as a refused request", status)
	}
}

// RFC 3261 §9.2: "Regardless of the method of the original request, as long as the CANCEL matched an existing
// transaction, the UAS answers the CANCEL request itself with a 200 (OK) response"; 481 is for a CANCEL that
// matched none. A MESSAGE held for its outcome (reply: wait) has its server transaction open.
func TestCancelOfPendingMessageGets200(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Message.Reply = "wait"
		c.Gateway.SetupFailed.Notify = false
	})
	phone, peer := newRawUDP(t), newRawUDP(t) // peer gets the INVITE and never answers it
	ruri := "sip:bob@" + peer.addr()
	callID := "cancelmsg-" + phone.addr()
	phone.write(h.udp(), message(ruri, phone.addr(), "z9hG4bK-cancelmsg", "sip:alice@127.0.0.1", callID, "text/plain", "hello"))
	if inv, _ := peer.request(); !inv.IsInvite() {
		t.Fatalf("peer got %s, want the INVITE", inv.StartLine())
	}
	phone.write(h.udp(), fmt.Sprintf("CANCEL %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-cancelmsg\nMax-Forwards: 70\n"+
		"From: <sip:alice@127.0.0.1>;tag=a1\nTo: <%s>\nCall-ID: %s\nCSeq: 1 CANCEL\nContent-Length: 0\n\n",
		ruri, phone.addr(), ruri, callID))
	for {
		res := phone.final()
		if res.CSeq().MethodName != sip.CANCEL {
			continue // the MESSAGE's own answer (202 after reply_wait)
		}
		if res.StatusCode != 200 {
			t.Fatalf("CANCEL of a pending MESSAGE answered %d %s, want 200", res.StatusCode, res.Reason)
		}
		return
	}
}

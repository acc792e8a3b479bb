package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// A header's compact form is the same header (RFC 3261 §7.3.3): $hdr(Subject) reads "s:" and $hdr(s) reads
// "Subject:", for headers sipgo parses (From, Call-ID) and for those it keeps as they came (Subject,
// Supported) alike.
func TestHeaderTemplateCompactForm(t *testing.T) {
	const head = "MESSAGE sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n" +
		"To: <sip:bob@127.0.0.1>\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n"
	compact := parseRequest(t, head+"f: <sip:alice@127.0.0.1>;tag=a\ni: c1\ns: chat-1\nk: 100rel\nContent-Length: 0\n\n", "127.0.0.1:5070")
	full := parseRequest(t, head+"From: <sip:alice@127.0.0.1>;tag=a\nCall-ID: c1\nSubject: chat-1\nSupported: 100rel\nContent-Length: 0\n\n", "127.0.0.1:5070")
	for _, c := range []struct{ full, compact, want string }{
		{"Subject", "s", "chat-1"},
		{"Supported", "k", "100rel"},
		{"Call-ID", "i", "c1"},
		{"From", "f", "<sip:alice@127.0.0.1>;tag=a"},
	} {
		for form, req := range map[string]*sip.Request{"compact": compact, "full": full} {
			for _, name := range []string{c.full, c.compact, strings.ToUpper(c.compact)} {
				if got, ok := (requestVars{req: req}).Header(name); !ok || got != c.want {
					t.Errorf("$hdr(%s) of the request in %s form: %q %v, want %q", name, form, got, ok, c.want)
				}
			}
		}
	}
}

// A template renders the same through AppendVar (the request's URIs written into the text) as through Var,
// for every request variable, literals, headers and the errors of a missing variable or header.
func TestAppendVarRendersAsVar(t *testing.T) {
	const head = "MESSAGE sip:bob@127.0.0.2:5062;transport=tcp?subject=x SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n" +
		"CSeq: 1 MESSAGE\nCall-ID: c-1@127.0.0.1\nSubject: chat 1\nContent-Type: text/plain\nContent-Length: 0\n"
	reqs := map[string]*sip.Request{
		"sip":  parseRequest(t, head+"From: \"Alice\" <sip:alice@127.0.0.1;user=phone>;tag=a\nTo: <sips:bob@127.0.0.3>\n\n", "127.0.0.1:5070"),
		"tel":  parseRequest(t, head+"From: <tel:+15550100;phone-context=example.com>;tag=a\nTo: <sip:bob@127.0.0.3?h=v>\n\n", "127.0.0.1:5070"),
		"noTo": parseRequest(t, head+"From: <sip:alice@127.0.0.1>;tag=a\n\n", "127.0.0.1:5070"),
	}
	vars := []string{"fu", "tu", "ru", "fU", "tU", "rU", "fd", "td", "rd", "ci", "si", "sp"}
	var srcs []string
	for _, v := range vars {
		srcs = append(srcs, "$"+v+":$fu", "<$"+v+">")
	}
	srcs = append(srcs, "$tu:$fu", "k-$ru/$hdr(Subject)/$ci", "$fu$hdr(X-None)")
	for _, src := range srcs {
		tpl, err := config.CompileTemplate(src, config.RequestVars)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		for name, req := range reqs {
			rv := requestVars{req: req}
			want, wantErr := tpl.Render(struct{ config.Vars }{rv}) // Var only
			got, err := tpl.Render(rv)
			if got != want || (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("%s on the %s request: AppendVar renders %q, %v; Var %q, %v", src, name, got, err, want, wantErr)
			}
		}
	}
	// The values themselves, for the default key: URIs without their headers part.
	key, err := config.CompileTemplate("$tu:$fu", config.RequestVars)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := key.Render(requestVars{req: reqs["tel"]}); err != nil ||
		got != "sip:bob@127.0.0.3:tel:+15550100;phone-context=example.com" {
		t.Errorf("$tu:$fu = %q, %v", got, err)
	}
}

// End to end: a key from $hdr(Subject) takes a MESSAGE whose proxy wrote the header in its compact form,
// instead of refusing it as missing the header (400).
func TestHeaderTemplateCompactFormEndToEnd(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Key = "$hdr(Subject)" })
	phone := newRawUDP(t)
	res := phone.exchange(h.udp(), "MESSAGE sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP "+phone.addr()+";branch=z9hG4bKcompact1\n"+
		"Max-Forwards: 70\nf: <sip:alice@127.0.0.1>;tag=a1\nt: <sip:bob@127.0.0.1>\ni: compact-1\nCSeq: 1 MESSAGE\n"+
		"s: chat-1\nc: application/im-iscomposing+xml\nl: 14\n\n<isComposing/>")
	if res.StatusCode/100 != 2 {
		t.Fatalf("MESSAGE with a compact Subject: %d %s %v", res.StatusCode, res.Reason, res.GetHeader("Warning"))
	}
}

// A tel: URI's user is its number, as OpenSIPS's $fU/$tU/$rU give it: a key "$tU:$fU" must tell two callers
// apart instead of putting every tel: user in the one session of the key ":".
func TestUserOfTelURI(t *testing.T) {
	r, err := NewTemplateRouter(func() *config.Config {
		c := config.Default()
		c.Gateway.Message.Key = "$tU:$fU:$rU"
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(from string) string {
		t.Helper()
		req := parseRequest(t, "MESSAGE TEL:+15550100;phone-context=example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n"+
			"From: <"+from+">;tag=a\nTo: \"Bob\" <tel:+15550100>\nCall-ID: c1\nCSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: 0\n\n", "127.0.0.1:5070")
		rt, err := r.RouteMessage(req)
		if err != nil {
			t.Fatal(err)
		}
		return rt.Key
	}
	for from, want := range map[string]string{
		"tel:+4930123456":                   "+15550100:+4930123456:+15550100",
		"tel:+4930654321;ext=12":            "+15550100:+4930654321:+15550100",
		"sip:+4930777@127.0.0.1;user=phone": "+15550100:+4930777:+15550100",
	} {
		if got := keyOf(from); got != want {
			t.Errorf("From %s: key %q, want %q", from, got, want)
		}
	}
}

// A key that renders empty (its header present but empty, or a URI without the user the template takes) is
// refused like a missing header: an empty key would gather unrelated requests in one session, which no
// operator could then show or end (the admin API and /mi take no empty key).
func TestEmptyKeyRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Gateway.Message.Key = "$hdr(X-Chat-Id)" })
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	res := alice.Send(h.udp(), bob.URI, "text/plain", "hello", sip.NewHeader("X-Chat-Id", ""))
	if res.StatusCode != 400 || res.GetHeader("Warning") == nil {
		t.Fatalf("MESSAGE with an empty X-Chat-Id: %d %s, %d sessions; want 400 with a Warning", res.StatusCode, res.Reason, len(h.gw.Sessions()))
	}

	c := config.Default()
	c.Gateway.Answer.Key = "$fU"
	r, err := NewTemplateRouter(c)
	if err != nil {
		t.Fatal(err)
	}
	inv := parseRequest(t, "INVITE sip:alice@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n"+
		"From: <sip:127.0.0.1:5070>;tag=a\nTo: <sip:alice@127.0.0.1>\nCall-ID: c1\nCSeq: 1 INVITE\nContent-Length: 0\n\n", "127.0.0.1:5070")
	var refusal *Refusal
	if rt, err := r.RouteInvite(inv); !errors.As(err, &refusal) || refusal.Code != 400 || refusal.Warning == "" {
		t.Fatalf("INVITE whose key $fU renders empty: key %q, %v; want a 400 refusal with a Warning", rt.Key, err)
	}
}

// A MESSAGE-side coordinate rendered from the INVITE (gateway.answer.from, to, ruri) that is no SIP URI, or
// would carry a header of the request's choosing (a bare LF, which sipgo keeps in a header value), is never
// put on the wire: the INVITE gets 400 with a Warning naming the key (the header, for a control character),
// and no session is made.
func TestAnswerCoordsInjectionRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.Answer.RURI = "$hdr(X-Target)"
		c.Gateway.Answer.From = "$hdr(X-Sender)"
	})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	for _, c := range []struct{ name, target, sender, key string }{
		// A control character is refused at intake (badinput.go), naming the header, before any template.
		{"LF in ruri", alice.URI + ";x=1\nX-Evil: injected", bob.URI, "header X-Target"},
		{"LF in from", alice.URI, bob.URI + "\nX-Evil: injected", "header X-Sender"},
		{"NUL in ruri", alice.URI + "\x00", bob.URI, "header X-Target"},
		{"space in ruri", "sip:alice smith@127.0.0.1", bob.URI, "gateway.answer.ruri"},
		{"angle bracket in from", bob.URI, bob.URI + ">;evil=1", "gateway.answer.from"},
		{"not a URI", "alice", bob.URI, "gateway.answer.ruri"},
		{"other scheme", "mailto:alice@example.com", bob.URI, "gateway.answer.ruri"},
	} {
		req, err := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 9}})
		req.AppendHeader(sip.NewHeader("X-Target", c.target))
		req.AppendHeader(sip.NewHeader("X-Sender", c.sender))
		req.SetDestination(h.udp())
		res, err := doReq(bob.SIPClient(), req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		w := res.GetHeader("Warning")
		if res.StatusCode != 400 || w == nil || !strings.Contains(w.Value(), c.key) {
			t.Errorf("%s: %d %s, Warning %v; want 400 with a Warning naming %s", c.name, res.StatusCode, res.Reason, w, c.key)
		}
		if w != nil && strings.ContainsAny(w.Value(), "\r\n\x00") {
			t.Errorf("%s: the Warning repeats a control character: %q", c.name, w.Value())
		}
	}
	if n := len(h.gw.Sessions()); n != 0 {
		t.Fatalf("%d sessions made from refused INVITEs", n)
	}
	if m, ok := alice.TryRecv(200 * time.Millisecond); ok {
		t.Fatalf("alice got a MESSAGE: %v", m)
	}

	// A clean value still works.
	req, _ := testpeer.NewRequest(sip.INVITE, bob.URI, alice.URI, "", nil)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 9}})
	req.AppendHeader(sip.NewHeader("X-Target", alice.URI))
	req.AppendHeader(sip.NewHeader("X-Sender", bob.URI))
	req.SetDestination(h.udp())
	if res, err := doReq(bob.SIPClient(), req); err != nil || res.StatusCode != 200 {
		t.Fatalf("INVITE with clean coordinates: %v %v", res, err)
	}
}

// A Warning never repeats a control character of the request: a From that does not parse is quoted in it, and
// a bare LF there (sipgo keeps it in a header value) would end the Warning and start a header of the
// request's choosing in the response.
func TestWarningHasNoControlCharacters(t *testing.T) {
	got := warningValue("gw", "From header does not parse: \"x\"\nX-Evil: 1\r\x00\x7f")
	if want := `399 gw "From header does not parse: 'x' X-Evil: 1   "`; got != want {
		t.Fatalf("warningValue: %q, want %q", got, want)
	}
}

// A setup_failed.body taking $hdr(X-Ref) reads the MESSAGE: one without X-Ref is refused 400 with a Warning up
// front (SPEC §6), since its setup-failed notification could not be rendered (SPEC §5: no failure untold).
func TestNotifyTemplateMissingHeaderRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.SetupFailed.Body = "Chat $hdr(X-Ref) failed: $code $reason"
	})
	alice := testpeer.NewPhone(t, "alice")

	// Control: with the header, the notification comes.
	bob1 := testpeer.NewClient(t, "bob1")
	bob1.SetAnswer(486, "")
	alice.Send(h.udp(), bob1.URI, "text/plain", "are you there?", sip.NewHeader("X-Ref", "r1"))
	if n, ok := alice.TryRecv(waitFor); !ok || string(n.Body()) != "Chat r1 failed: 486 Busy Here" {
		t.Fatalf("control: notification %v %v", n, ok)
	}

	bob2 := testpeer.NewClient(t, "bob2")
	bob2.SetAnswer(486, "")
	res := alice.Send(h.udp(), bob2.URI, "text/plain", "are you there?")
	if w := warning(res); res.StatusCode != 400 || !strings.Contains(w, "X-Ref") || !strings.Contains(w, "gateway.setup_failed.body") {
		t.Fatalf("MESSAGE without the X-Ref header that setup_failed.body needs: %d %s, Warning %q; want 400 naming both",
			res.StatusCode, res.Reason, w)
	}
}

// The same for failure_notify.body.
func TestFailureNotifyTemplateMissingHeaderRefused(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Gateway.FailureNotify.Body = "[$hdr(X-Ref)] not delivered ($code $reason): $excerpt"
	})
	alice := testpeer.NewPhone(t, "alice")
	try := func(user string, extra ...sip.Header) (*sip.Response, *sip.Request) {
		bob := testpeer.NewClient(t, user)
		bob.SetReply(413)
		res := alice.Send(h.udp(), bob.URI, "text/plain", "hello", extra...)
		n, _ := alice.TryRecv(3 * time.Second)
		return res, n
	}
	// Control: with the header, the notification comes.
	if res, n := try("bob1", sip.NewHeader("X-Ref", "r1")); n == nil || string(n.Body()) != "[r1] not delivered (413 Request Entity Too Large): hello" {
		t.Fatalf("control: MESSAGE %d, notification %v", res.StatusCode, n)
	}
	res := alice.Send(h.udp(), "sip:bob2@127.0.0.1:9", "text/plain", "hello")
	if w := warning(res); res.StatusCode != 400 || !strings.Contains(w, "X-Ref") || !strings.Contains(w, "gateway.failure_notify.body") {
		t.Fatalf("MESSAGE without the X-Ref header that failure_notify.body needs: %d %s, Warning %q; want 400 naming both",
			res.StatusCode, res.Reason, w)
	}
}

// $hdr(Name) is the first value of the header in the request in either form (REFERENCE.md), whichever form the
// template names.
func TestHeaderTwiceMixedForms(t *testing.T) {
	const head = "MESSAGE sip:bob@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\n" +
		"From: <sip:alice@127.0.0.1>;tag=a\nTo: <sip:bob@127.0.0.1>\nCall-ID: c1\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n"
	for _, c := range []struct{ headers, name, want string }{
		{"X-A: one\nX-A: two\n", "X-A", "one"}, // control
		{"X-A: one\nx-a: two\n", "X-A", "one"}, // control
		{"s: one\nSubject: two\n", "Subject", "one"},
		{"Subject: one\ns: two\n", "s", "one"},
		{"s: one\nSubject: two\n", "subject", "one"},
	} {
		req := parseRequest(t, head+c.headers+"Content-Length: 0\n\n", "127.0.0.1:5070")
		if got, ok := (requestVars{req: req}).Header(c.name); !ok || got != c.want {
			t.Errorf("$hdr(%s) of a request with\n%s= %q, want %q (the first occurrence)", c.name, c.headers, got, c.want)
		}
	}
}

// A Router's Refusal with a code that is not a failure (0: not SIP; 200: a delivery that did not happen, SPEC
// §5) is answered 500.
func TestRouterRefusalCodeChecked(t *testing.T) {
	for _, code := range []int{0, 200} {
		router := RouterFuncs{
			Message: func(*sip.Request) (Route, error) { return Route{}, &Refusal{Code: code, Reason: "Whatever"} },
			Invite:  func(*sip.Request) (Route, error) { return Route{}, &Refusal{Code: code, Reason: "Whatever"} },
		}
		h := newHarnessWith(t, nil, Options{Router: router})
		u := newRawUDP(t)
		u.write(h.udp(), message("sip:bob@127.0.0.1", u.addr(), "z9hG4bKref"+itoa(code), "sip:alice@127.0.0.1", "ref"+itoa(code), "text/plain", "hi"))
		buf := make([]byte, 4096)
		u.pc.SetReadDeadline(time.Now().Add(waitFor))
		n, _, err := u.pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("Refusal{Code: %d}: no answer: %v", code, err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		var got int
		if _, err := fmt.Sscanf(line, "SIP/2.0 %d", &got); err != nil || got != 500 {
			t.Errorf("Refusal{Code: %d} from a Router: the MESSAGE is answered %q, want 500", code, line)
		}
	}
}

// An empty correlation key is refused whoever makes it, a Router as the templates: it would put unrelated
// requests in one session that no operator could show or end.
func TestRouterEmptyKeyRefused(t *testing.T) {
	types := config.Default().Gateway.Message.AcceptTypes
	router := RouterFuncs{
		Message: func(*sip.Request) (Route, error) { return Route{Key: "", AcceptTypes: types}, nil },
		Invite:  func(*sip.Request) (Route, error) { return Route{}, &Refusal{Code: 403, Reason: "Forbidden"} },
	}
	h := newHarnessWith(t, nil, Options{Router: router})
	alice := testpeer.NewPhone(t, "alice")
	bob := testpeer.NewClient(t, "bob")
	res := alice.Send(h.udp(), bob.URI, "text/plain", "hello")
	if ss := h.gw.Sessions(); len(ss) != 0 || res.StatusCode != 400 {
		t.Fatalf("a Router's empty key: MESSAGE answered %d %s, %d session(s), first key %q; want it refused (400/500) and no session",
			res.StatusCode, res.Reason, len(ss), func() string {
				if len(ss) > 0 {
					return ss[0].Key
				}
				return "-"
			}())
	}
}

// New refuses a RouterFuncs without both functions, and a Router that panics costs its request a 500, not the
// process.
func TestRouterFuncsNilAndPanics(t *testing.T) {
	types := config.Default().Gateway.Message.AcceptTypes
	message := func(req *sip.Request) (Route, error) {
		return Route{Key: req.To().Address.String() + ":" + req.From().Address.String(), AcceptTypes: types}, nil
	}
	if _, err := New(testConfig(), Options{Router: RouterFuncs{Message: message}}); err == nil {
		t.Fatal("New took a RouterFuncs without Invite")
	}
	router := RouterFuncs{Message: message, Invite: func(*sip.Request) (Route, error) { panic("a bug in the program's router") }}
	h := newHarnessWith(t, nil, Options{Router: router})
	bob := testpeer.NewClient(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := bob.Invite(ctx, h.udp(), "sip:alice@127.0.0.1:9", ""); testpeer.InviteCode(err) != 500 {
		t.Fatalf("INVITE whose routing panicked: %v, want 500", err)
	}
	alice := testpeer.NewPhone(t, "alice")
	code := make(chan int, 1)
	go func() { code <- alice.Send(h.udp(), bob.URI, "text/plain", "still here?").StatusCode }()
	if m := bob.WaitInvite().Recv(); string(m.Body) != "still here?" {
		t.Fatalf("MESSAGE after the panic delivered as %q", m.Body)
	}
	if c := <-code; c/100 != 2 {
		t.Fatalf("MESSAGE after the panic: %d, want it taken", c)
	}
}

// warning is a response's Warning value, "" when it has none.
func warning(res *sip.Response) string {
	if w := res.GetHeader("Warning"); w != nil {
		return w.Value()
	}
	return ""
}

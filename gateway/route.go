package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
)

// Route is what the gateway needs to know about a request to place it in a gateway session: the reference's
// msg_to_msrp(key, content_types) and msrp_gw_answer(key, content_types, from, to, ruri) arguments.
type Route struct {
	// Key is the correlation key: requests with the same key belong to the same gateway session.
	Key string
	// AcceptTypes and AcceptWrappedTypes are offered on the MSRP side (a=accept-types, a=accept-wrapped-types)
	// and are what the page-mode side is configured to receive.
	AcceptTypes        []string
	AcceptWrappedTypes []string
	// From, To and RURI are the MESSAGE-side coordinates: the From, To and Request-URI of the MESSAGEs the
	// gateway generates from the session's SENDs. Set for INVITE routes; for MESSAGE routes the gateway
	// mirrors the MESSAGE itself (SPEC §3.1) and ignores them.
	From, To, RURI string
}

// Refusal is a routing decision not to serve a request, answered with Code and Reason (and a Warning header
// when Warning is set). A Router returns it as its error.
type Refusal struct {
	Code    int
	Reason  string
	Warning string
}

func (r *Refusal) Error() string {
	if r.Warning != "" {
		return fmt.Sprintf("refused %d %s: %s", r.Code, r.Reason, r.Warning)
	}
	return fmt.Sprintf("refused %d %s", r.Code, r.Reason)
}

// Router decides which gateway session a request belongs to. The default renders the configured templates;
// a Go program may supply its own (see the package example).
type Router interface {
	// RouteMessage routes a page-mode MESSAGE.
	RouteMessage(req *sip.Request) (Route, error)
	// RouteInvite routes an INVITE from the session-mode side.
	RouteInvite(req *sip.Request) (Route, error)
}

// RouterFuncs adapts two functions to a Router.
type RouterFuncs struct {
	Message func(req *sip.Request) (Route, error)
	Invite  func(req *sip.Request) (Route, error)
}

// RouteMessage implements Router.
func (f RouterFuncs) RouteMessage(req *sip.Request) (Route, error) { return f.Message(req) }

// RouteInvite implements Router.
func (f RouterFuncs) RouteInvite(req *sip.Request) (Route, error) { return f.Invite(req) }

// routeBy asks the router (its RouteMessage or RouteInvite) for a request's route, and holds any Router to what
// the gateway needs: a key that is not empty, and a panic that costs this request a 500, not the process.
func (g *Gateway) routeBy(f func(*sip.Request) (Route, error), req *sip.Request) (rt Route, err error) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("router panicked", "panic", p, "call_id", callID(req), "method", string(req.Method), "stack", string(debug.Stack()))
			rt, err = Route{}, &Refusal{Code: 500, Reason: "Server Internal Error", Warning: "routing failed"}
		}
	}()
	rt, err = f(req)
	if err == nil && rt.Key == "" {
		err = &Refusal{Code: 400, Reason: "Bad Request", Warning: "the correlation key is empty for this request"}
	}
	return rt, err
}

// templateRouter is the default Router: the `gateway.answer` and `gateway.message` rules of the config.
type templateRouter struct {
	messageKey                      *config.Template
	messageAccept, messageWrapped   []string
	answerKey, answerFrom, answerTo *config.Template
	answerRURI                      *config.Template
	answerAccept, answerWrapped     []string
}

// NewTemplateRouter compiles the routing templates of cfg once; rendering them per request is cheap.
func NewTemplateRouter(cfg *config.Config) (Router, error) {
	g := cfg.Gateway
	compile := func(key, src string) (*config.Template, error) {
		t, err := config.CompileTemplate(src, config.RequestVars)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		return t, nil
	}
	var r templateRouter
	var errs []error
	var err error
	if r.messageKey, err = compile("gateway.message.key", g.Message.Key); err != nil {
		errs = append(errs, err)
	}
	if r.answerKey, err = compile("gateway.answer.key", g.Answer.Key); err != nil {
		errs = append(errs, err)
	}
	if r.answerFrom, err = compile("gateway.answer.from", g.Answer.From); err != nil {
		errs = append(errs, err)
	}
	if r.answerTo, err = compile("gateway.answer.to", g.Answer.To); err != nil {
		errs = append(errs, err)
	}
	if r.answerRURI, err = compile("gateway.answer.ruri", g.Answer.RURI); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.messageAccept, r.messageWrapped = g.Message.AcceptTypes, g.Message.AcceptWrappedTypes
	r.answerAccept, r.answerWrapped = g.Answer.AcceptTypes, g.Answer.AcceptWrappedTypes
	return &r, nil
}

func (r *templateRouter) RouteMessage(req *sip.Request) (Route, error) {
	v := requestVars{req: req}
	key, err := renderKey(r.messageKey, v)
	if err != nil {
		return Route{}, err
	}
	return Route{Key: key, AcceptTypes: r.messageAccept, AcceptWrappedTypes: r.messageWrapped}, nil
}

func (r *templateRouter) RouteInvite(req *sip.Request) (Route, error) {
	v := requestVars{req: req}
	rt := Route{AcceptTypes: r.answerAccept, AcceptWrappedTypes: r.answerWrapped}
	var err error
	if rt.Key, err = renderKey(r.answerKey, v); err != nil {
		return Route{}, err
	}
	if rt.From, err = render(r.answerFrom, v); err != nil {
		return Route{}, err
	}
	if rt.To, err = render(r.answerTo, v); err != nil {
		return Route{}, err
	}
	if rt.RURI, err = render(r.answerRURI, v); err != nil {
		return Route{}, err
	}
	return rt, nil
}

// render turns a template failure into the 400 SPEC §6 asks for.
func render(t *config.Template, v config.Vars) (string, error) {
	s, err := t.Render(v)
	if err != nil {
		var mh *config.MissingHeaderError
		if errors.As(err, &mh) {
			return "", &Refusal{Code: 400, Reason: "Bad Request", Warning: fmt.Sprintf("missing header %s needed by the routing template", mh.Header)}
		}
		return "", &Refusal{Code: 400, Reason: "Bad Request", Warning: err.Error()}
	}
	return s, nil
}

// renderKey renders a correlation key, refusing one that comes out empty (an empty header, a URI without the
// user the template takes): it would gather unrelated requests in one session that no operator could show or
// end, the admin API and /mi taking no empty key.
func renderKey(t *config.Template, v config.Vars) (string, error) {
	key, err := render(t, v)
	if err == nil && key == "" {
		return "", &Refusal{Code: 400, Reason: "Bad Request", Warning: fmt.Sprintf("the correlation key %s renders empty for this request", t)}
	}
	return key, err
}

// coordsProblem says which of an INVITE route's MESSAGE-side coordinates cannot be put on the wire, and why;
// "" when all three are SIP URIs. They are rendered from the request (gateway.answer.from, to and ruri), or
// made by a Router from it: a header the templates take may carry a bare LF (sipgo keeps it), a space or a
// '>', and sipgo's URI parser takes those too, so a MESSAGE made from them would carry headers the request
// chose, or not parse. Checked before the session is accepted, so the request is refused, not its messages.
func coordsProblem(rt Route) string {
	for _, c := range []struct{ key, v string }{
		{"gateway.answer.from", rt.From}, {"gateway.answer.to", rt.To}, {"gateway.answer.ruri", rt.RURI},
	} {
		if why := uriProblem(c.v); why != "" {
			return c.key + " renders, for this request, a value that " + why
		}
	}
	return ""
}

// uriProblem says why s is not a SIP (sip:, sips:) or tel: URI that can go in a request line or a From or To
// header; "" when it is. Control characters, spaces and the characters that delimit a URI in a header are
// never in one (RFC 3261 §25.1: they are escaped).
func uriProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; notInURI(c) {
			return fmt.Sprintf("contains %q at byte %d, which a SIP URI cannot", c, i+1)
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return "is not a SIP URI: " + err.Error()
	}
	switch strings.ToLower(u.Scheme) {
	case "tel":
	case "sip", "sips":
		if u.Host == "" {
			return "is a SIP URI without a host"
		}
	default:
		return fmt.Sprintf("has scheme %q, not sip, sips or tel", u.Scheme)
	}
	return ""
}

// notInURI says whether c can never be in a URI as it is written in a request line or a From or To header.
func notInURI(c byte) bool { return c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' }

// messageURIProblem says which of a MESSAGE's Request-URI, From and To URIs, the coordinates the gateway
// copies into the INVITE it sends and into the MESSAGEs it sends back, holds a character no URI can (sipgo's
// URI parser takes spaces, '>' and control characters); "" when none does. With full, each must also be a SIP
// URI as uriProblem says, rendered: for the MESSAGE that sets up a session. Without, it reads the parsed URIs
// and allocates nothing: every MESSAGE is checked. From and To must have parsed (addressProblem).
func messageURIProblem(req *sip.Request, full bool) string {
	for _, c := range [...]struct {
		name string
		u    *sip.Uri
	}{{"Request-URI", &req.Recipient}, {"From URI", &req.From().Address}, {"To URI", &req.To().Address}} {
		if b, bad := uriBytes(c.u, notInURI); bad {
			return fmt.Sprintf("%s contains %q, which a SIP URI cannot", c.name, b)
		}
		if full {
			if why := uriProblem(uriString(c.u)); why != "" {
				return c.name + " " + why
			}
		}
	}
	return ""
}

// requestVars exposes a SIP request to the templates under the OpenSIPS variable names.
type requestVars struct {
	req   *sip.Request
	extra map[string]string // notification variables: code, reason, key, excerpt
}

func (v requestVars) Var(name string) (string, bool) {
	if s, ok := v.extra[name]; ok {
		return s, true
	}
	req := v.req
	if req == nil {
		return "", false
	}
	switch name {
	case "fu", "fU", "fd":
		if f := req.From(); f != nil {
			return uriPart(&f.Address, name[1]), true
		}
	case "tu", "tU", "td":
		if t := req.To(); t != nil {
			return uriPart(&t.Address, name[1]), true
		}
	case "ru", "rU", "rd":
		return uriPart(&req.Recipient, name[1]), true
	case "ci":
		if c := req.CallID(); c != nil {
			return c.Value(), true
		}
	case "si", "sp":
		host, port, err := net.SplitHostPort(req.Source())
		if err != nil {
			return "", false
		}
		if name == "si" {
			return host, true
		}
		return port, true
	}
	return "", false
}

// AppendVar appends a variable's value to dst (config.VarAppender): a URI is written straight into the text
// being rendered, not made into a string of its own first.
func (v requestVars) AppendVar(dst []byte, name string) ([]byte, bool) {
	if _, extra := v.extra[name]; !extra && v.req != nil {
		switch name {
		case "fu":
			if f := v.req.From(); f != nil {
				return appendURI(dst, &f.Address), true
			}
			return dst, false
		case "tu":
			if t := v.req.To(); t != nil {
				return appendURI(dst, &t.Address), true
			}
			return dst, false
		case "ru":
			return appendURI(dst, &v.req.Recipient), true
		}
	}
	val, ok := v.Var(name)
	return append(dst, val...), ok
}

// Header reads the header in whichever form it came: $hdr(Subject) finds "s:", $hdr(s) finds "Subject:"
// (RFC 3261 §7.3.3). sipgo names the headers it parses (From, Call-ID…) by their full name, and keeps the
// others under the name they came with.
func (v requestVars) Header(name string) (string, bool) {
	if v.req == nil {
		return "", false
	}
	// The first in the request in either form: "s: one" then "Subject: two" is "one" for both names.
	other, hasOther := otherHeaderForm(name)
	for _, h := range v.req.Headers() {
		if n := h.Name(); strings.EqualFold(n, name) || hasOther && strings.EqualFold(n, other) {
			return h.Value(), true
		}
	}
	return "", false
}

// compactHeaders maps each compact header name to its full name, in lower case (the compact forms of the
// IANA SIP header registry).
var compactHeaders = map[string]string{
	"a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
	"e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
	"l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
	"s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}

// otherHeaderForm returns the full name of a compact header name, or the compact name of a full one.
func otherHeaderForm(name string) (string, bool) {
	name = strings.ToLower(name)
	if full, ok := compactHeaders[name]; ok {
		return full, true
	}
	for compact, full := range compactHeaders {
		if full == name {
			return compact, true
		}
	}
	return "", false
}

// uriPart renders the whole URI ('u'), its user ('U') or its host ('d'). A tel: URI's user is its number
// without parameters, and its host is empty, as in OpenSIPS: sipgo keeps tel: URIs unparsed.
func uriPart(u *sip.Uri, part byte) string {
	switch part {
	case 'U':
		if u.Scheme == "tel" {
			number, _, _ := strings.Cut(u.Raw(), ";")
			return number
		}
		return u.User
	case 'd':
		return u.Host
	}
	return uriString(u)
}

// uriString renders a URI without its headers part, as the key templates expect.
func uriString(u *sip.Uri) string {
	b := writeURI(u)
	s := b.String() // the one allocation: the buffer goes back to the pool
	uriBuffers.Put(b)
	return s
}

// appendURI appends the URI as uriString renders it.
func appendURI(dst []byte, u *sip.Uri) []byte {
	b := writeURI(u)
	dst = append(dst, b.Bytes()...)
	uriBuffers.Put(b)
	return dst
}

// writeURI renders u without its headers part into a pooled buffer, which the caller puts back.
func writeURI(u *sip.Uri) *bytes.Buffer {
	c := *u
	c.Headers = nil
	b := uriBuffers.Get().(*bytes.Buffer)
	b.Reset()
	c.StringWrite(b)
	return b
}

// uriBuffers hold URIs while they are rendered: sip.Uri writes to an io.StringWriter, which a buffer of
// the caller's own would escape to the heap through, once or twice per URI.
var uriBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msrpgw/msrpgw/internal/sipsyntax"
)

// Validate checks the whole configuration and returns every problem found, joined with errors.Join, each a
// *KeyError or *TemplateError naming its key (and line and column when the Config was read from a file). On
// success it has compiled the templates, which the rules' accessors then return.
func (c *Config) Validate() error {
	v := validation{c: c}
	v.sip()
	v.msrp()
	v.gateway()
	v.admin()
	v.listenerClashes()
	v.limits()
	v.log()
	v.events()
	def, err := decodeDefault()
	if err != nil {
		return err
	}
	// A key already refused for its value is not also reported as not yet effective.
	v.errs = append(v.errs, c.checkEffective(def, v.refused)...)
	return errors.Join(v.errs...)
}

// validation collects the problems of one Validate run.
type validation struct {
	c    *Config
	errs []error
}

func (v *validation) bad(key, format string, args ...any) {
	v.errs = append(v.errs, v.c.pos.keyError(key, fmt.Errorf(format, args...)))
}

// refused reports whether a problem was found at key or inside it (key[i], key.sub).
func (v *validation) refused(key string) bool {
	for _, err := range v.errs {
		var ke *KeyError
		var te *TemplateError
		var at string
		switch {
		case errors.As(err, &ke):
			at = ke.Key
		case errors.As(err, &te):
			at = te.Key
		}
		if at == key || strings.HasPrefix(at, key+"[") || strings.HasPrefix(at, key+".") {
			return true
		}
	}
	return false
}

func (v *validation) positive(key string, d time.Duration) {
	if d <= 0 {
		v.bad(key, "%v: want a duration above zero", d)
	}
}

// wholeSeconds checks a duration that goes on the wire as a number of seconds (Retry-After, RFC 3261 §20.33):
// anything else would be sent rounded.
func (v *validation) wholeSeconds(key string, d time.Duration) {
	if d < time.Second || d%time.Second != 0 {
		v.bad(key, "%v: want whole seconds, 1s or more (it is sent as a number of seconds)", d)
	}
}

func (v *validation) positiveInt(key string, n int64) {
	if n <= 0 {
		v.bad(key, "%d: want a number above zero", n)
	}
}

// template compiles a template for key, or records why it does not compile.
func (v *validation) template(key, src string, allowed VarSet, mayBeEmpty bool) *Template {
	if src == "" && !mayBeEmpty {
		v.errs = append(v.errs, v.c.pos.keyError(key, errTemplateEmpty))
		return nil
	}
	t, err := CompileTemplate(src, allowed)
	if err != nil {
		var te *TemplateError
		if errors.As(err, &te) {
			v.errs = append(v.errs, v.c.pos.templateError(key, te, src))
		} else {
			v.errs = append(v.errs, v.c.pos.keyError(key, err))
		}
		return nil
	}
	return t
}

// noLineBreak refuses text that goes into a SIP header and would break it.
func (v *validation) noLineBreak(key, s string) {
	if strings.ContainsAny(s, "\r\n\x00") {
		v.bad(key, "%q contains a line break or NUL, which would break the SIP message", s)
	}
}

// pair refuses one of two files set without the other (a certificate without its key).
func (v *validation) pair(keyA, a, keyB, b string) {
	switch {
	case a != "" && b == "":
		v.bad(keyB, "is empty but %s is set; set both or neither", keyA)
	case a == "" && b != "":
		v.bad(keyA, "is empty but %s is set; set both or neither", keyB)
	}
}

func (v *validation) sip() {
	s := &v.c.SIP
	if len(s.Listen) == 0 {
		v.bad("sip.listen", "is empty; the gateway needs at least one SIP listener")
	}
	for i, l := range s.Listen {
		key := fmt.Sprintf("sip.listen[%d]", i)
		if _, err := ParseListen(l.String()); err != nil {
			v.bad(key, "%w", err)
			continue
		}
		if l.Network == "tls" && (s.TLS.Cert == "" || s.TLS.Key == "") {
			v.bad(key, "%s needs sip.tls.cert and sip.tls.key", l)
		}
	}
	if err := checkSIPURI(s.Contact); err != nil {
		v.bad("sip.contact", "%w", err)
	}
	if s.OutboundProxy != "" {
		err := checkSIPURI(s.OutboundProxy)
		if _, rest, _ := strings.Cut(s.OutboundProxy, ":"); err == nil {
			if _, port, hasPort := sipURIHostPort(rest); hasPort && port == "0" {
				err = fmt.Errorf("%q: port 0 is no port to send to", s.OutboundProxy)
			}
		}
		if err != nil {
			v.bad("sip.outbound_proxy", "%w", err)
		}
	}
	if len(s.Trusted) == 0 {
		v.bad("sip.trusted", "is empty: no source could create a session or send a message; list the networks that may (0.0.0.0/0 and ::/0 for any source)")
	}
	for i, p := range s.Trusted {
		if !p.IsValid() {
			v.bad(fmt.Sprintf("sip.trusted[%d]", i), "%v is not a valid prefix", p)
		}
	}
	for i, cr := range s.Credentials {
		if cr.Username == "" {
			v.bad(fmt.Sprintf("sip.credentials[%d].username", i), "is empty; a credential needs a username")
		}
	}
	v.pair("sip.auth.realm", s.Auth.Realm, "sip.auth.users_file", s.Auth.UsersFile)
	v.pair("sip.tls.cert", s.TLS.Cert, "sip.tls.key", s.TLS.Key)
	if s.TLS.ClientCA != "" && s.TLS.Cert == "" {
		v.bad("sip.tls.client_ca", "is set but sip.tls.cert is not; client certificates are only checked on a TLS listener")
	}
}

func (v *validation) msrp() {
	m := &v.c.MSRP
	secure, _, err := m.ListenAddr()
	if err != nil {
		v.bad("msrp.listen", "%w", err)
	} else if secure && (m.TLS.Cert == "" || m.TLS.Key == "") {
		v.bad("msrp.listen", "%s is msrps:// and needs msrp.tls.cert and msrp.tls.key", m.Listen)
	}
	// a=path must name an address peers can connect to: 0.0.0.0 or :: in it would send them nowhere.
	if m.Advertise != "" {
		if err := checkHostPort(m.Advertise, false); err != nil {
			v.bad("msrp.advertise", "%w", err)
		} else if wildcard(m.Advertise) {
			v.bad("msrp.advertise", "%q is a wildcard address; put the address peers reach in a=path", m.Advertise)
		}
	} else if _, hp, err := m.ListenAddr(); err == nil && wildcard(hp) {
		v.bad("msrp.advertise", "is empty but msrp.listen %s is a wildcard address, which peers cannot reach "+
			"in a=path; set the address they reach, e.g. 192.0.2.10:2855", m.Listen)
	}
	v.positiveInt("msrp.chunk_size", int64(m.ChunkSize))
	v.positive("msrp.transaction_timeout", m.TransactionTimeout)
	v.positive("msrp.unbound_timeout", m.UnboundTimeout)
	if m.KeepAlive < 0 {
		v.bad("msrp.keepalive", "%v: want 0 (off) or a duration above zero", m.KeepAlive)
	}
	v.pair("msrp.tls.cert", m.TLS.Cert, "msrp.tls.key", m.TLS.Key)
	if m.TLS.ClientCA != "" {
		v.bad("msrp.tls.client_ca", "is not a key of msrp.tls")
	}
}

// listenerClashes refuses a listener the kernel would not open beside an earlier one: the same protocol and
// port on the same address, however it is written (127.0.0.1 and ::ffff:127.0.0.1, a port with a leading
// zero), or on a wildcard address (0.0.0.0, ::), which takes the port on every address of both families. SIP
// tcp and tls listeners, msrp.listen and admin.listen are all TCP. Port 0 picks a free port and never clashes.
func (v *validation) listenerClashes() {
	type listener struct {
		key, text, proto, host string // host canonical: an IP as netip prints it, a DNS name in lower case
		port                   uint64
	}
	var open []listener
	add := func(key, text, proto, hostport string) {
		host, p, err := net.SplitHostPort(hostport)
		port, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || port == 0 {
			return // refused already, or a port the kernel picks
		}
		if a, err := netip.ParseAddr(host); err == nil {
			host = a.Unmap().String()
		} else {
			host = strings.ToLower(strings.TrimSuffix(host, "."))
		}
		l := listener{key: key, text: text, proto: proto, host: host, port: port}
		for _, o := range open {
			if o.proto != l.proto || o.port != l.port || (o.host != l.host && !isWildcardHost(o.host) && !isWildcardHost(l.host)) {
				continue
			}
			if o.text == l.text {
				v.bad(key, "%s is listed twice (also %s)", l.text, o.key)
				return
			}
			theirs := ""
			if o.host != l.host {
				theirs = " " + on(o.host)
			}
			v.bad(key, "%s takes %s port %d %s, as %s (%s) does%s; both cannot listen there",
				l.text, l.proto, l.port, on(l.host), o.key, o.text, theirs)
			return
		}
		open = append(open, l)
	}
	for i, l := range v.c.SIP.Listen {
		proto := "TCP"
		if l.Network == "udp" {
			proto = "UDP"
		}
		add(fmt.Sprintf("sip.listen[%d]", i), l.String(), proto, l.Addr)
	}
	if _, hp, err := v.c.MSRP.ListenAddr(); err == nil {
		add("msrp.listen", v.c.MSRP.Listen, "TCP", hp)
	}
	if v.c.Admin.Listen != "" {
		add("admin.listen", v.c.Admin.Listen, "TCP", v.c.Admin.Listen)
	}
}

// isWildcardHost reports whether host is an unspecified address (0.0.0.0, ::). Linux refuses to bind a port on
// any address, of either family, beside a listener on a wildcard one.
func isWildcardHost(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// on says where a listener on host takes its port.
func on(host string) string {
	if isWildcardHost(host) {
		return "on every address"
	}
	return "on " + host
}

// wildcard reports whether the host of hostport is an unspecified address (0.0.0.0, ::).
func wildcard(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

func (v *validation) gateway() {
	g := &v.c.Gateway
	v.positive("gateway.message_timeout", g.MessageTimeout)
	v.positive("gateway.session_timeout", g.SessionTimeout)
	if g.MaxDuration < 0 {
		v.bad("gateway.max_duration", "%v: want 0 (no limit) or a duration above zero", g.MaxDuration)
	}
	v.positive("gateway.setup_timeout", g.SetupTimeout)
	v.positive("gateway.shutdown_timeout", g.ShutdownTimeout)
	if g.SessionTimeout > 0 && g.SessionTimeout < g.MessageTimeout {
		v.bad("gateway.session_timeout", "%v is lower than gateway.message_timeout (%v); a session would end "+
			"for lack of SENDs while the page-mode side may still write (SPEC §3.3)", g.SessionTimeout, g.MessageTimeout)
	}
	v.positiveInt("gateway.max_message_size", g.MaxMessageSize)

	a := &g.Answer
	a.key = v.template("gateway.answer.key", a.Key, RequestVars, false)
	a.from = v.template("gateway.answer.from", a.From, RequestVars, false)
	a.to = v.template("gateway.answer.to", a.To, RequestVars, false)
	a.ruri = v.template("gateway.answer.ruri", a.RURI, RequestVars, false)
	v.uriTemplate("gateway.answer.from", a.from)
	v.uriTemplate("gateway.answer.to", a.to)
	v.uriTemplate("gateway.answer.ruri", a.ruri)
	v.mediaTypes("gateway.answer.accept_types", a.AcceptTypes, true)
	v.mediaTypes("gateway.answer.accept_wrapped_types", a.AcceptWrappedTypes, false)

	m := &g.Message
	m.key = v.template("gateway.message.key", m.Key, RequestVars, false)
	v.mediaTypes("gateway.message.accept_types", m.AcceptTypes, true)
	v.mediaTypes("gateway.message.accept_wrapped_types", m.AcceptWrappedTypes, false)
	for i, h := range m.InviteHeaders {
		key := fmt.Sprintf("gateway.message.invite_headers[%d]", i)
		name, _, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		switch {
		case !ok || !sipsyntax.IsToken(name):
			v.bad(key, "%q is not a header line like \"P-Preferred-Service: urn:…\"", h)
		case slices.ContainsFunc(inviteOwnHeaders, func(own string) bool { return strings.EqualFold(own, name) }):
			v.bad(key, "%q: the gateway writes %s itself; a second one would make the INVITE invalid (RFC 3261 §7.3.1)", h, name)
		}
		v.noLineBreak(key, h)
	}
	v.noLineBreak("gateway.message.contact_params", m.ContactParams)
	if err := checkContactParams(m.ContactParams); err != nil {
		v.bad("gateway.message.contact_params", "%w", err)
	}
	switch m.Reply {
	case ReplyWait, ReplyAccept, ReplyOK:
	default:
		v.bad("gateway.message.reply", "%q: want wait, accept or ok", m.Reply)
	}
	v.positive("gateway.message.reply_wait", m.ReplyWait)
	if m.ReplyWait >= sipTransactionTimeout {
		v.bad("gateway.message.reply_wait", "%v: want less than %v, when the sender's transaction has given up (RFC 3261 Timer F) and it may send the message again",
			m.ReplyWait, sipTransactionTimeout)
	}

	g.SetupFailed.body = v.notify("gateway.setup_failed", &g.SetupFailed)
	g.FailureNotify.body = v.notify("gateway.failure_notify", &g.FailureNotify)
}

// uriTemplate refuses a template that goes into a request as a URI but can only render something else: one
// that starts with a user part, a host, an address or text, not with a URI variable ($fu $tu $ru), a header
// (which may hold a URI) or a sip:, sips: or tel: scheme. The gateway would answer every INVITE 400.
func (v *validation) uriTemplate(key string, t *Template) {
	if t == nil || len(t.segs) == 0 {
		return // refused already
	}
	switch first := t.segs[0]; first.kind {
	case segHeader:
	case segVar:
		if first.text != "fu" && first.text != "tu" && first.text != "ru" {
			v.bad(key, "%q renders no SIP or tel: URI: it starts with $%s; start it with $fu, $tu, $ru, $hdr(Name) "+
				"or a scheme, e.g. \"sip:$tU@gw.example.net\"", t.src, first.text)
		}
	default:
		lower := strings.ToLower(first.text)
		if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") && !strings.HasPrefix(lower, "tel:") {
			v.bad(key, "%q renders no SIP or tel: URI: it starts with %q; start it with sip:, sips: or tel:, or with "+
				"$fu, $tu, $ru or $hdr(Name)", t.src, first.text)
		}
	}
}

// sipTransactionTimeout is how long a SIP client waits for the final response to a non-INVITE request: Timer F,
// 64·T1 (RFC 3261 §17.1.2.2).
const sipTransactionTimeout = 32 * time.Second

func (v *validation) notify(key string, n *Notify) *Template {
	// A notification that is switched off may keep an empty body; one that is sent may not (an empty
	// MESSAGE is refused by RFC 3428 receivers, and by us).
	return v.template(key+".body", n.Body, NotifyVars, !n.Notify)
}

// mediaTypes checks a list of MSRP accept-types entries: "*", "type/*" or "type/subtype", with parameters.
func (v *validation) mediaTypes(key string, types []string, needOne bool) {
	if needOne && len(types) == 0 {
		v.bad(key, "is empty; list at least one media type")
	}
	for i, t := range types {
		base, _, _ := strings.Cut(t, ";")
		typ, sub, ok := strings.Cut(strings.TrimSpace(base), "/")
		if t == "*" || ok && sipsyntax.IsToken(typ) && (sub == "*" || sipsyntax.IsToken(sub)) {
			continue
		}
		v.bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a media type like text/plain", t)
	}
}

func (v *validation) admin() {
	a := &v.c.Admin
	if a.Listen != "" {
		if err := checkHostPort(a.Listen, true); err != nil {
			v.bad("admin.listen", "%w", err)
		}
	}
	// The token is a secret: the error names the key and never shows the value.
	switch {
	case strings.ContainsAny(a.Token, "\r\n\x00"):
		v.bad("admin.token", "contains a line break or NUL, which no Authorization header can carry (a block scalar, "+
			"token: |, ends in a line break; write the token as a plain or quoted string)")
	case strings.TrimLeft(a.Token, " \t") != a.Token || strings.TrimRight(a.Token, " \t") != a.Token:
		// HTTP drops white space around a header value: no request could present this token.
		v.bad("admin.token", "starts or ends with a space or tab, which HTTP drops from the Authorization header, "+
			"so no request could match it; remove it")
	case strings.ContainsFunc(a.Token, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
		v.bad("admin.token", "contains a control character, which no Authorization header can carry")
	}
}

func (v *validation) limits() {
	l := &v.c.Limits
	for _, f := range []struct {
		key string
		n   int
	}{
		{"limits.max_sessions", l.MaxSessions},
		{"limits.max_sessions_per_source", l.MaxSessionsPerSource},
		{"limits.max_queued_per_session", l.MaxQueuedPerSession},
		{"limits.max_queued_total", l.MaxQueuedTotal},
		{"limits.max_conns", l.MaxConns},
		{"limits.max_conns_per_source", l.MaxConnsPerSource},
		{"limits.max_header_bytes", l.MaxHeaderBytes},
		{"limits.max_chunks_per_message", l.MaxChunksPerMessage},
		{"limits.max_partial_per_session", l.MaxPartialPerSession},
		{"limits.max_sip_handlers", l.MaxSIPHandlers},
		{"limits.max_sip_conns", l.MaxSIPConns},
		{"limits.max_sip_conns_per_source", l.MaxSIPConnsPerSource},
	} {
		v.positiveInt(f.key, int64(f.n))
	}
	v.positive("limits.sip_conn_idle_timeout", l.SIPConnIdleTimeout)
	if w := v.c.Gateway.Message.ReplyWait; l.SIPConnIdleTimeout > 0 && l.SIPConnIdleTimeout <= w {
		// A MESSAGE held for its outcome gets no provisional response: its connection is quiet meanwhile.
		v.bad("limits.sip_conn_idle_timeout", "%v: want more than gateway.message.reply_wait (%v), or a connection whose MESSAGE waits for its outcome is closed before its answer",
			l.SIPConnIdleTimeout, w)
	}
	v.wholeSeconds("limits.retry_after", l.RetryAfter)
}

func (v *validation) log() {
	switch v.c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q: want debug, info, warn or error", v.c.Log.Level)
	}
	switch v.c.Log.Format {
	case "text", "json":
	default:
		v.bad("log.format", "%q: want text or json", v.c.Log.Format)
	}
}

func (v *validation) events() {
	known := WebhookEvents()
	for i, w := range v.c.Events.Webhooks {
		key := fmt.Sprintf("events.webhooks[%d]", i)
		// A URL may carry a password (http://user:pass@host/): errors show it masked, as the dispatcher's logs
		// do, or, when it does not parse, not at all.
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			v.bad(key+".url", "is empty")
		case err != nil:
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL
			}
			if strings.Contains(w.URL, "@") {
				v.bad(key+".url", "is not a URL (not shown: it may hold a password): %w", err)
			} else {
				v.bad(key+".url", "%q is not a URL: %w", w.URL, err)
			}
		case u.Scheme != "http" && u.Scheme != "https":
			v.bad(key+".url", "%q: want an http:// or https:// URL", u.Redacted())
		case u.Hostname() == "":
			v.bad(key+".url", "%q has no host", u.Redacted())
		case u.Port() != "" && !validPort(u.Port()):
			v.bad(key+".url", "%q: port %q is not a number from 1 to 65535", u.Redacted(), u.Port())
		}
		for j, e := range w.Events {
			if !slices.Contains(known, e) {
				v.bad(fmt.Sprintf("%s.events[%d]", key, j), "%q is not an event; want one of %s", e, strings.Join(known, ", "))
			}
		}
	}
}

// inviteOwnHeaders are the headers the gateway writes on every INVITE it generates, in full and compact form:
// gateway.message.invite_headers may not add a second one.
var inviteOwnHeaders = []string{
	"Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Content-Type", "c",
	"Content-Length", "l", "Max-Forwards", "Route",
}

// checkContactParams checks gateway.message.contact_params as the gateway uses it: items separated by ";",
// each an RFC 3261 generic-param (token, or token=value with a token, a host or a quoted string as value),
// so that the Contact of every generated INVITE parses.
func checkContactParams(params string) error {
	for _, item := range strings.Split(params, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, hasValue := strings.Cut(item, "=")
		if !sipsyntax.IsToken(name) {
			return fmt.Errorf("%q: parameter name %q is not a token", params, name)
		}
		if hasValue && !sipsyntax.IsToken(value) && !isQuotedString(value) && !isIPv6Reference(value) {
			return fmt.Errorf("%q: the value of %s is neither a token nor a quoted string", params, name)
		}
	}
	return nil
}

// isQuotedString reports whether s is one RFC 3261 quoted-string: in double quotes, with no quote inside
// that is not escaped with a backslash.
func isQuotedString(s string) bool {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		switch s[i] {
		case '\\':
			i++
			if i == len(s)-1 {
				return false // the closing quote escaped
			}
		case '"':
			return false
		}
	}
	return true
}

func isIPv6Reference(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	a, err := netip.ParseAddr(s[1 : len(s)-1])
	return err == nil && a.Is6()
}

// validPort reports whether p is a port number a request can be sent to: 1 to 65535.
func validPort(p string) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n > 0
}

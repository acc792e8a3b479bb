package config

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/msrpgw/msrpgw/internal/sipsyntax"
)

// VarSet says which variables a template may use, after where it is used.
type VarSet int

const (
	// RequestVars are the variables of a SIP request: $fu $tu $ru $fU $tU $rU $fd $td $rd $ci $si $sp and
	// $hdr(Name). Correlation keys and the MESSAGE-side From/To/Request-URI use these.
	RequestVars VarSet = iota
	// NotifyVars are RequestVars plus $code $reason $key $excerpt, for notification bodies.
	NotifyVars
)

// String names the set as an operator would see it in an error.
func (s VarSet) String() string {
	switch s {
	case RequestVars:
		return "request variables"
	case NotifyVars:
		return "notification variables"
	}
	return fmt.Sprintf("VarSet(%d)", int(s))
}

// allows reports whether name (without '$') belongs to the set. The names are OpenSIPS's pseudo-variables,
// so that operators migrating from the reference module recognise them.
func (s VarSet) allows(name string) bool {
	switch name {
	case "fu", "tu", "ru", "fU", "tU", "rU", "fd", "td", "rd", "ci", "si", "sp":
		return true
	case "code", "reason", "key", "excerpt":
		return s == NotifyVars
	}
	return false
}

// names lists the variables of the set, for error messages.
func (s VarSet) names() string {
	const request = "$fu $tu $ru $fU $tU $rU $fd $td $rd $ci $si $sp $hdr(Name)"
	if s == NotifyVars {
		return request + " $code $reason $key $excerpt"
	}
	return request
}

// Vars supplies variable values at render time; the gateway implements it over a SIP request (and, for
// notification bodies, the failure being reported).
type Vars interface {
	// Var returns the value of a variable; name is without '$', e.g. "fu" or "code".
	Var(name string) (string, bool)
	// Header returns the first value of the named header field, matched case-insensitively.
	Header(name string) (string, bool)
}

// VarAppender is a Vars that can append a variable's value to the text being rendered: Render then makes
// one string, the result, instead of one per value first (a URI formatted from a parsed header, say, for
// every request's correlation key). AppendVar returns dst with the value appended, or false as Var does.
type VarAppender interface {
	AppendVar(dst []byte, name string) ([]byte, bool)
}

// segment is one piece of a compiled template: literal text, a variable or a header.
type segment struct {
	kind segKind
	text string // the literal text, the variable name (without '$') or the header name
}

type segKind uint8

const (
	segLiteral segKind = iota
	segVar
	segHeader
)

// Template is a compiled variable template, e.g. "$tu:$fu". Compile once at start-up; Render is safe for
// concurrent use and allocates only the result.
type Template struct {
	src  string
	segs []segment
	// literalLen is the total length of the literal segments, the floor of the rendered length.
	literalLen int
}

// TemplateError says where a template is wrong. Line and Column are positions in the YAML file when the
// template came from one (Line 0 otherwise, and Column counts from 1 in the template text itself).
type TemplateError struct {
	Key    string // the configuration key, e.g. "gateway.answer.key"; empty for CompileTemplate
	Line   int
	Column int
	Msg    string
}

// Error implements error.
func (e *TemplateError) Error() string {
	var b strings.Builder
	if e.Key != "" {
		b.WriteString("key " + e.Key + " ")
	} else {
		b.WriteString("template ")
	}
	switch {
	case e.Line > 0:
		fmt.Fprintf(&b, "(line %d, column %d)", e.Line, e.Column)
	default:
		fmt.Fprintf(&b, "(column %d)", e.Column)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// MissingHeaderError is returned by Render when the request lacks a header the template uses; the gateway
// answers such a request 400 with a Warning naming the header.
type MissingHeaderError struct {
	Header string
}

// Error implements error.
func (e *MissingHeaderError) Error() string {
	return fmt.Sprintf("the request has no %s header, which the template needs", e.Header)
}

// MissingVarError is returned by Render when Vars has no value for a variable the template uses.
type MissingVarError struct {
	Var string // without '$'
}

// Error implements error.
func (e *MissingVarError) Error() string {
	return fmt.Sprintf("no value for template variable $%s", e.Var)
}

// CompileTemplate parses src. Variables are written $name (e.g. $fu), $(name) when letters follow directly,
// or $hdr(Name); $$ is a literal dollar. A variable outside allowed, or a '$' that starts nothing, is a
// *TemplateError whose Column points at the '$' (counted in bytes from 1).
func CompileTemplate(src string, allowed VarSet) (*Template, error) {
	t := &Template{src: src}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, segment{kind: segLiteral, text: lit.String()})
			t.literalLen += lit.Len()
			lit.Reset()
		}
	}
	fail := func(at int, format string, args ...any) (*Template, error) {
		return nil, &TemplateError{Column: at + 1, Msg: fmt.Sprintf(format, args...)}
	}
	for i := 0; i < len(src); {
		c := src[i]
		if c != '$' {
			j := strings.IndexByte(src[i:], '$')
			if j < 0 {
				j = len(src) - i
			}
			lit.WriteString(src[i : i+j])
			i += j
			continue
		}
		start := i
		i++
		if i < len(src) && src[i] == '$' {
			lit.WriteByte('$')
			i++
			continue
		}
		var name string
		braced := i < len(src) && src[i] == '('
		if braced {
			end := strings.IndexByte(src[i:], ')')
			if end < 0 {
				return fail(start, "unclosed \"$(\" in %q", src)
			}
			name = src[i+1 : i+end]
			i += end + 1
			if !isVarName(name) {
				return fail(start, "%q is not a variable name (allowed: %s)", name, allowed.names())
			}
		} else {
			j := i
			for j < len(src) && isLetter(src[j]) {
				j++
			}
			name = src[i:j]
			i = j
			if name == "" {
				return fail(start, "'$' not followed by a variable name; write $$ for a literal dollar")
			}
		}
		if name == "hdr" && !braced {
			if i >= len(src) || src[i] != '(' {
				return fail(start, "$hdr needs a header name: $hdr(Name)")
			}
			end := strings.IndexByte(src[i:], ')')
			if end < 0 {
				return fail(start, "unclosed \"$hdr(\" in %q", src)
			}
			h := src[i+1 : i+end]
			i += end + 1
			if !sipsyntax.IsToken(h) {
				return fail(start, "$hdr(%s): %q is not a header name", h, h)
			}
			flush()
			t.segs = append(t.segs, segment{kind: segHeader, text: h})
			continue
		}
		if !allowed.allows(name) {
			return fail(start, "unknown variable $%s (allowed here: %s)", name, allowed.names())
		}
		flush()
		t.segs = append(t.segs, segment{kind: segVar, text: name})
	}
	flush()
	return t, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) {
			return false
		}
	}
	return true
}

// maxStackVals is how many variable values Render keeps on the stack to size its result in one allocation;
// every template in practice has fewer.
const maxStackVals = 8

// Render substitutes the variables. A header the request lacks is a *MissingHeaderError, a variable Vars
// has no value for a *MissingVarError.
func (t *Template) Render(v Vars) (string, error) {
	// A template that is one variable (the default from/to/ruri) needs no copy at all.
	if len(t.segs) == 1 && t.segs[0].kind != segLiteral {
		return t.value(v, t.segs[0])
	}
	if va, ok := v.(VarAppender); ok {
		return t.renderAppending(v, va)
	}
	var stack [maxStackVals]string
	vals := stack[:0]
	n := t.literalLen
	for _, s := range t.segs {
		if s.kind == segLiteral {
			continue
		}
		val, err := t.value(v, s)
		if err != nil {
			return "", err
		}
		vals = append(vals, val)
		n += len(val)
	}
	var b strings.Builder
	b.Grow(n)
	k := 0
	for _, s := range t.segs {
		if s.kind == segLiteral {
			b.WriteString(s.text)
			continue
		}
		b.WriteString(vals[k])
		k++
	}
	return b.String(), nil
}

// renderAppending is Render for a VarAppender: the text is built in a pooled buffer, and the result is the
// one string made.
func (t *Template) renderAppending(v Vars, va VarAppender) (string, error) {
	bp := renderBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	for _, s := range t.segs {
		switch s.kind {
		case segLiteral:
			b = append(b, s.text...)
		case segVar:
			var ok bool
			if b, ok = va.AppendVar(b, s.text); !ok {
				putRenderBuffer(bp, b)
				return "", &MissingVarError{Var: s.text}
			}
		default:
			val, err := t.value(v, s)
			if err != nil {
				putRenderBuffer(bp, b)
				return "", err
			}
			b = append(b, val...)
		}
	}
	out := string(b)
	putRenderBuffer(bp, b)
	return out, nil
}

// renderBuffers hold texts while renderAppending builds them. One that grew past maxPooledRender (a
// template taking a large header) is dropped rather than kept.
var renderBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

const maxPooledRender = 4096

func putRenderBuffer(bp *[]byte, b []byte) {
	if cap(b) > maxPooledRender {
		return
	}
	*bp = b[:0]
	renderBuffers.Put(bp)
}

func (t *Template) value(v Vars, s segment) (string, error) {
	switch s.kind {
	case segHeader:
		val, ok := v.Header(s.text)
		if !ok {
			return "", &MissingHeaderError{Header: s.text}
		}
		return val, nil
	case segVar:
		val, ok := v.Var(s.text)
		if !ok {
			return "", &MissingVarError{Var: s.text}
		}
		return val, nil
	}
	return s.text, nil
}

// String returns the source text the template was compiled from.
func (t *Template) String() string { return t.src }

// Headers lists the header names the template reads with $hdr(Name), so that a caller can tell in advance
// which requests it cannot render.
func (t *Template) Headers() []string {
	var hs []string
	for _, s := range t.segs {
		if s.kind == segHeader {
			hs = append(hs, s.text)
		}
	}
	return hs
}

// errTemplateEmpty is what an empty key or URI template compiles to: it would put every request in one
// session or address nobody.
var errTemplateEmpty = errors.New("must not be empty")

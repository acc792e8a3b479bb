package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fakeVars is a request as the gateway would present it.
type fakeVars struct {
	vars    map[string]string
	headers map[string]string // lower-case names
}

func (f fakeVars) Var(name string) (string, bool) {
	v, ok := f.vars[name]
	return v, ok
}

func (f fakeVars) Header(name string) (string, bool) {
	v, ok := f.headers[strings.ToLower(name)]
	return v, ok
}

// appendingVars is fakeVars with AppendVar, so that Render builds the text by appending (VarAppender).
type appendingVars struct{ fakeVars }

func (a appendingVars) AppendVar(dst []byte, name string) ([]byte, bool) {
	v, ok := a.Var(name)
	return append(dst, v...), ok
}

func request() fakeVars {
	return fakeVars{
		vars: map[string]string{
			"fu": "sip:alice@a.example.org", "tu": "sip:bob@b.example.org", "ru": "sip:bob@10.0.0.2:5070",
			"fU": "alice", "tU": "bob", "rU": "bob",
			"fd": "a.example.org", "td": "b.example.org", "rd": "10.0.0.2",
			"ci": "a84b4c76e66710", "si": "127.0.0.1", "sp": "5060",
			"code": "480", "reason": "Temporarily Unavailable", "key": "sip:bob@b.example.org:sip:alice@a.example.org",
			"excerpt": "hello there",
		},
		headers: map[string]string{"x-target": "sip:carol@c.example.org", "p-asserted-identity": "<sip:alice@a.example.org>"},
	}
}

func TestRenderEveryVariable(t *testing.T) {
	for _, tc := range []struct {
		src  string
		set  VarSet
		want string
	}{
		{"$fu", RequestVars, "sip:alice@a.example.org"},
		{"$tu", RequestVars, "sip:bob@b.example.org"},
		{"$ru", RequestVars, "sip:bob@10.0.0.2:5070"},
		{"$fU", RequestVars, "alice"},
		{"$tU", RequestVars, "bob"},
		{"$rU", RequestVars, "bob"},
		{"$fd", RequestVars, "a.example.org"},
		{"$td", RequestVars, "b.example.org"},
		{"$rd", RequestVars, "10.0.0.2"},
		{"$ci", RequestVars, "a84b4c76e66710"},
		{"$si", RequestVars, "127.0.0.1"},
		{"$sp", RequestVars, "5060"},
		{"$hdr(X-Target)", RequestVars, "sip:carol@c.example.org"},
		{"$hdr(x-target)", RequestVars, "sip:carol@c.example.org"},
		{"$code", NotifyVars, "480"},
		{"$reason", NotifyVars, "Temporarily Unavailable"},
		{"$key", NotifyVars, "sip:bob@b.example.org:sip:alice@a.example.org"},
		{"$excerpt", NotifyVars, "hello there"},
		{"$fu:$tu", RequestVars, "sip:alice@a.example.org:sip:bob@b.example.org"},
		{"$tu:$fu", RequestVars, "sip:bob@b.example.org:sip:alice@a.example.org"},
		{"sip:$fU@gw.example.net", RequestVars, "sip:alice@gw.example.net"},
		{"$si:$sp/$ci", RequestVars, "127.0.0.1:5060/a84b4c76e66710"},
		{"$(fU)x", RequestVars, "alicex"},
		{"cost: $$5 $$$fU", RequestVars, "cost: $5 $alice"},
		{"", RequestVars, ""},
		{"literal only", RequestVars, "literal only"},
		{"Failed to establish session, error: $code $reason", NotifyVars, "Failed to establish session, error: 480 Temporarily Unavailable"},
		{"Message not delivered ($code $reason): $excerpt", NotifyVars, "Message not delivered (480 Temporarily Unavailable): hello there"},
		{"$fu$tu$ru$fU$tU$rU$fd$td$rd$ci$si$sp", RequestVars, // more values than Render keeps on its stack
			"sip:alice@a.example.orgsip:bob@b.example.orgsip:bob@10.0.0.2:5070alicebobboba.example.orgb.example.org10.0.0.2a84b4c76e66710127.0.0.15060"},
		{"$fu_x$fd-$fd.$fd", RequestVars, "sip:alice@a.example.org_xa.example.org-a.example.org.a.example.org"},
	} {
		tpl, err := CompileTemplate(tc.src, tc.set)
		if err != nil {
			t.Errorf("CompileTemplate(%q) = %v", tc.src, err)
			continue
		}
		got, err := tpl.Render(request())
		if err != nil || got != tc.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tc.src, got, err, tc.want)
		}
		if tpl.String() != tc.src {
			t.Errorf("String() = %q, want %q", tpl.String(), tc.src)
		}
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		src    string
		set    VarSet
		column int
		msg    string
	}{
		{"$fx", RequestVars, 1, "unknown variable $fx"},
		{"$fu:$tx", RequestVars, 5, "unknown variable $tx (allowed here: $fu $tu"},
		{"$fuX", RequestVars, 1, "unknown variable $fuX"},
		{"key=$code", RequestVars, 5, "unknown variable $code"},
		{"$excerpt $hdr(A) $nope", NotifyVars, 18, "unknown variable $nope"},
		{"abc$", RequestVars, 4, "'$' not followed by a variable name; write $$ for a literal dollar"},
		{"a $1", RequestVars, 3, "'$' not followed by a variable name"},
		{"$hdr", RequestVars, 1, "$hdr needs a header name: $hdr(Name)"},
		{"$hdr X", RequestVars, 1, "$hdr needs a header name"},
		{"x$hdr(Via", RequestVars, 2, `unclosed "$hdr(" in "x$hdr(Via"`},
		{"$hdr()", RequestVars, 1, `"" is not a header name`},
		{"$hdr(A B)", RequestVars, 1, `"A B" is not a header name`},
		{"$(fu", RequestVars, 1, `unclosed "$("`},
		{"ab$(f1)", RequestVars, 3, `"f1" is not a variable name`},
		{"$(hdr)", RequestVars, 1, "unknown variable $hdr"},
		{"$(code)", RequestVars, 1, "unknown variable $code"},
	} {
		_, err := CompileTemplate(tc.src, tc.set)
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("CompileTemplate(%q) = %v, want *TemplateError", tc.src, err)
			continue
		}
		if te.Column != tc.column || !strings.Contains(te.Msg, tc.msg) || te.Line != 0 || te.Key != "" {
			t.Errorf("CompileTemplate(%q) = %+v, want column %d and %q", tc.src, te, tc.column, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "template (column ") {
			t.Errorf("Error() = %q", err)
		}
	}
}

func TestRenderMissing(t *testing.T) {
	tpl, err := CompileTemplate("$fu/$hdr(X-Account)", RequestVars)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpl.Render(request())
	var mh *MissingHeaderError
	if !errors.As(err, &mh) || mh.Header != "X-Account" {
		t.Fatalf("Render = %v, want *MissingHeaderError{X-Account}", err)
	}
	if !strings.Contains(err.Error(), "X-Account") {
		t.Errorf("error %q does not name the header", err)
	}
	// A header alone takes the one-variable fast path; it must fail the same way.
	tpl, _ = CompileTemplate("$hdr(X-Account)", RequestVars)
	if _, err := tpl.Render(request()); !errors.As(err, &mh) {
		t.Errorf("Render(single header) = %v, want *MissingHeaderError", err)
	}

	tpl, _ = CompileTemplate("$fu $code", NotifyVars)
	_, err = tpl.Render(fakeVars{vars: map[string]string{"fu": "sip:a@b"}})
	var mv *MissingVarError
	if !errors.As(err, &mv) || mv.Var != "code" {
		t.Errorf("Render = %v, want *MissingVarError{code}", err)
	}
}

func TestTemplateHeaders(t *testing.T) {
	tpl, err := CompileTemplate("$hdr(A):$fu:$hdr(B)", RequestVars)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tpl.Headers(), ","); got != "A,B" {
		t.Errorf("Headers() = %q", got)
	}
}

func FuzzCompileTemplate(f *testing.F) {
	for _, s := range []string{
		"$fu:$tu", "$tu:$fu", "$fu", "$hdr(P-Asserted-Identity)", "$(fU)x", "$$", "$", "$hdr(", "$(",
		"Failed to establish session, error: $code $reason", "Message not delivered ($code $reason): $excerpt",
		"sip:$fU@$fd;transport=tcp", "$si:$sp|$ci",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, reqErr := CompileTemplate(src, RequestVars)
		tpl, err := CompileTemplate(src, NotifyVars)
		if reqErr == nil && err != nil {
			t.Fatalf("CompileTemplate(%q) compiles with RequestVars but not with their superset NotifyVars: %v", src, err)
		}
		if err != nil {
			var te *TemplateError
			if !errors.As(err, &te) || te.Column < 1 || te.Column > len(src)+1 {
				t.Fatalf("CompileTemplate(%q) = %v: want a *TemplateError with a column inside the text", src, err)
			}
			return
		}
		if tpl.String() != src {
			t.Fatalf("String() = %q, want %q", tpl.String(), src)
		}
		out, err := tpl.Render(request())
		var mh *MissingHeaderError
		if err != nil && !errors.As(err, &mh) {
			t.Fatalf("Render(%q) = %v", src, err)
		}
		// Appending the values into the text (VarAppender) renders exactly as Var does.
		if aout, aerr := tpl.Render(appendingVars{request()}); aout != out || fmt.Sprint(aerr) != fmt.Sprint(err) {
			t.Fatalf("Render(%q) through AppendVar = %q, %v; through Var %q, %v", src, aout, aerr, out, err)
		}
		if err == nil && !strings.Contains(src, "$") && out != src {
			t.Fatalf("Render(%q) = %q; text without '$' must render as itself", src, out)
		}
	})
}

// benchVars answers without allocating, as the gateway's view of a parsed request would.
type benchVars struct{}

func (benchVars) Var(name string) (string, bool) {
	switch name {
	case "fu":
		return "sip:alice@a.example.org", true
	case "tu":
		return "sip:bob@b.example.org", true
	}
	return "", false
}

func (benchVars) Header(string) (string, bool) { return "sip:carol@c.example.org", true }

func BenchmarkRender(b *testing.B) {
	for _, src := range []string{"$tu:$fu", "$fu", "sip:$hdr(X-Target);user=phone"} {
		tpl, err := CompileTemplate(src, RequestVars)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tpl.Render(benchVars{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

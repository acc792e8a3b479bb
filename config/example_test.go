package config_test

import (
	"fmt"

	"github.com/msrpgw/msrpgw/config"
)

// request is what the gateway hands a template: a SIP request's variables and headers.
type request map[string]string

func (r request) Var(name string) (string, bool)    { v, ok := r[name]; return v, ok }
func (r request) Header(name string) (string, bool) { v, ok := r["hdr:"+name]; return v, ok }

func ExampleParse() {
	c, err := config.Parse([]byte(`
gateway:
  setup_timeout: 10s
  message:
    reply: accept
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	key, _ := c.Gateway.Message.KeyTemplate().Render(request{"fu": "sip:alice@a.example.org", "tu": "sip:bob@b.example.org"})
	fmt.Println(c.Gateway.SetupTimeout, c.Gateway.SessionTimeout, key)
	// Output: 10s 12h0m0s sip:bob@b.example.org:sip:alice@a.example.org
}

func ExampleParse_errors() {
	_, err := config.Parse([]byte(`
gateway:
  session_timeout: 1h
  answer:
    key: "$fu:$tx"
`))
	fmt.Println(err)
	// Output:
	// key gateway.session_timeout (line 3, column 20): 1h0m0s is lower than gateway.message_timeout (2h0m0s); a session would end for lack of SENDs while the page-mode side may still write (SPEC §3.3)
	// key gateway.answer.key (line 5, column 15): unknown variable $tx (allowed here: $fu $tu $ru $fU $tU $rU $fd $td $rd $ci $si $sp $hdr(Name))
}

func ExampleCompileTemplate() {
	t, err := config.CompileTemplate("sip:$fU@gw.example.net;account=$hdr(X-Account)", config.RequestVars)
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := t.Render(request{"fU": "alice", "hdr:X-Account": "42"})
	fmt.Println(out, err)
	_, err = t.Render(request{"fU": "alice"})
	fmt.Println(err)
	// Output:
	// sip:alice@gw.example.net;account=42 <nil>
	// the request has no X-Account header, which the template needs
}

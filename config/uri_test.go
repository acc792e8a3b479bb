package config

import (
	"strings"
	"testing"
)

// TestSIPURIEmptyUser: "sip:@host" is no SIP URI (RFC 3261 §25.1: the user before '@' is one character or
// more); sip.contact and sip.outbound_proxy refuse it with key, line and column.
func TestSIPURIEmptyUser(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sip:\n  contact: \"sip:@127.0.0.1:5060\"\n", `key sip.contact (line 2, column 12): "sip:@127.0.0.1:5060": the user part before '@' is empty`},
		{"sip:\n  outbound_proxy: \"sip:@proxy.example.net;transport=tcp\"\n", `key sip.outbound_proxy (line 2, column 19): "sip:@proxy.example.net;transport=tcp": the user part before '@' is empty`},
		{"sip:\n  contact: \"sip::secret@127.0.0.1\"\n", `key sip.contact (line 2, column 12): "sip::secret@127.0.0.1": the user part before '@' is empty`},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v\nwant an error containing %s", tc.yaml, err, tc.want)
		}
	}
	if _, err := Parse([]byte("sip:\n  contact: \"sip:gw@127.0.0.1:5060\"\n")); err != nil {
		t.Errorf("a contact with a user: %v", err)
	}
}

// TestAnswerURITemplatesRenderURIs: gateway.answer.from, to and ruri go into the MESSAGEs as URIs; a template
// that can only render something else (a user part, a host, text) would fail every INVITE with 400 at run
// time, so it is refused with key, line and column. What may render a URI is accepted.
func TestAnswerURITemplatesRenderURIs(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"gateway:\n  answer:\n    ruri: \"$fU\"\n", `key gateway.answer.ruri (line 3, column 11): "$fU" renders no SIP or tel: URI: it starts with $fU`},
		{"gateway:\n  answer:\n    from: \"$si:$sp\"\n", `key gateway.answer.from (line 3, column 11): "$si:$sp" renders no SIP or tel: URI: it starts with $si`},
		{"gateway:\n  answer:\n    to: alice\n", `key gateway.answer.to (line 3, column 9): "alice" renders no SIP or tel: URI: it starts with "alice"`},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v\nwant an error containing %s", tc.yaml, err, tc.want)
		}
	}
	for _, y := range []string{
		"gateway:\n  answer:\n    ruri: \"sip:$tU@gw.example.net\"\n",
		"gateway:\n  answer:\n    ruri: \"SIPS:$tU@gw.example.net\"\n",
		"gateway:\n  answer:\n    to: \"tel:+15551234\"\n",
		"gateway:\n  answer:\n    from: \"$(tu)\"\n",
		"gateway:\n  answer:\n    from: \"$hdr(P-Original-From)\"\n",
	} {
		if _, err := Parse([]byte(y)); err != nil {
			t.Errorf("Parse(%q): %v", y, err)
		}
	}
}

package config

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

func TestDefaultNeverFails(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if c.Gateway.Answer.KeyTemplate() == nil || c.Gateway.Message.KeyTemplate() == nil ||
		c.Gateway.SetupFailed.BodyTemplate() == nil || c.Gateway.FailureNotify.BodyTemplate() == nil {
		t.Fatal("Default() did not compile its templates")
	}
	// Two calls give independent values: changing one must not change the next.
	c.SIP.Listen[0].Addr = "127.0.0.1:1"
	if Default().SIP.Listen[0].Addr != "127.0.0.1:5060" {
		t.Fatal("Default() shares state between calls")
	}
}

// TestDefaultValues pins every key of the default configuration to SPEC §6 (limits: this package's sizes).
func TestDefaultValues(t *testing.T) {
	types := []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"}
	wrapped := []string{"text/plain", "message/imdn+xml", "application/im-iscomposing+xml"}
	want := map[string]any{
		"sip.listen":          []Listen{{"udp", "127.0.0.1:5060"}, {"tcp", "127.0.0.1:5060"}},
		"sip.contact":         "sip:127.0.0.1:5060",
		"sip.outbound_proxy":  "",
		"sip.trusted":         []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		"sip.credentials":     []Credential{},
		"sip.auth.realm":      "",
		"sip.auth.users_file": "",
		"sip.tls.cert":        "",
		"sip.tls.key":         "",
		"sip.tls.client_ca":   "",

		"msrp.listen":              "msrp://127.0.0.1:2855;tcp",
		"msrp.advertise":           "",
		"msrp.chunk_size":          2048,
		"msrp.transaction_timeout": 30 * time.Second,
		"msrp.unbound_timeout":     30 * time.Second,
		"msrp.check_from_path":     true,
		"msrp.keepalive":           60 * time.Second,
		"msrp.tls.cert":            "",
		"msrp.tls.key":             "",

		"gateway.message_timeout":              2 * time.Hour,
		"gateway.session_timeout":              12 * time.Hour,
		"gateway.max_duration":                 12 * time.Hour,
		"gateway.setup_timeout":                30 * time.Second,
		"gateway.shutdown_timeout":             10 * time.Second,
		"gateway.max_message_size":             int64(32768),
		"gateway.forward_control":              false,
		"gateway.cpim_passthrough":             false,
		"gateway.answer.key":                   "$fu:$tu",
		"gateway.answer.accept_types":          types,
		"gateway.answer.accept_wrapped_types":  wrapped,
		"gateway.answer.from":                  "$fu",
		"gateway.answer.to":                    "$tu",
		"gateway.answer.ruri":                  "$ru",
		"gateway.message.key":                  "$tu:$fu",
		"gateway.message.accept_types":         types,
		"gateway.message.accept_wrapped_types": wrapped,
		"gateway.message.invite_headers":       []string{},
		"gateway.message.contact_params":       "",
		"gateway.message.reply":                "wait",
		"gateway.message.reply_wait":           4 * time.Second,
		"gateway.setup_failed.notify":          true,
		"gateway.setup_failed.body":            "Failed to establish session, error: $code $reason",
		"gateway.failure_notify.notify":        true,
		"gateway.failure_notify.body":          "Message not delivered ($code $reason): $excerpt",
		"gateway.imdn.delivered_on_200":        true,
		"gateway.imdn.request":                 false,

		"admin.listen": "127.0.0.1:8080",
		"admin.token":  "",
		"admin.pprof":  false,

		"limits.max_sessions":             200000,
		"limits.max_sessions_per_source":  200000,
		"limits.max_queued_per_session":   1000,
		"limits.max_queued_total":         200000,
		"limits.max_conns":                19000,
		"limits.max_conns_per_source":     19000,
		"limits.max_header_bytes":         16384,
		"limits.max_chunks_per_message":   1024,
		"limits.max_partial_per_session":  16,
		"limits.max_sip_handlers":         10000,
		"limits.max_sip_conns":            500,
		"limits.max_sip_conns_per_source": 500,
		"limits.sip_conn_idle_timeout":    5 * time.Minute,
		"limits.retry_after":              5 * time.Second,

		"log.level":  "info",
		"log.format": "text",

		"events.webhooks": []Webhook{},
	}
	c := Default()
	for _, key := range schemaKeys() {
		w, ok := want[key]
		if !ok {
			t.Errorf("%s: no expected default in this test", key)
			continue
		}
		got, _ := lookup(c, key)
		if !reflect.DeepEqual(got.Interface(), w) {
			t.Errorf("%s = %#v, want %#v", key, got.Interface(), w)
		}
		delete(want, key)
	}
	for key := range want {
		t.Errorf("%s: expected in the schema but missing", key)
	}
}

// TestDefaultYAMLIsSpec checks that default.yaml carries SPEC §6's YAML line for line (comments included),
// apart from the limits section, which this package fills in.
func TestDefaultYAMLIsSpec(t *testing.T) {
	spec, err := os.ReadFile("testdata/spec-section6.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := string(DefaultYAML())
	for line := range strings.SplitSeq(strings.TrimSpace(string(spec)), "\n") {
		if strings.HasPrefix(line, "limits:") {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(line), "# load targets") {
			continue
		}
		if !strings.Contains(def, line+"\n") {
			t.Errorf("default.yaml lacks SPEC line %q", line)
		}
	}
}

func TestFullFileRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	pos, err := decodeOver(c, data)
	if err != nil {
		t.Fatalf("decode full.yaml: %v", err)
	}
	for _, key := range schemaKeys() {
		if _, ok := pos[key]; !ok {
			t.Errorf("full.yaml does not set %s", key)
		}
	}
	def, _ := decodeDefault()
	for _, key := range schemaKeys() {
		a, _ := lookup(c, key)
		d, _ := lookup(def, key)
		if sameValue(a, d) {
			t.Errorf("full.yaml leaves %s at its default %v; set it to something else", key, a.Interface())
		}
	}
	// Spot checks of the conversions.
	if got, want := c.SIP.Listen[1], (Listen{"tcp", "[::1]:5071"}); got != want {
		t.Errorf("sip.listen[1] = %v, want %v", got, want)
	}
	if got, want := c.SIP.Trusted[1], netip.MustParsePrefix("192.0.2.7/32"); got != want {
		t.Errorf("bare IPv4 in sip.trusted = %v, want %v", got, want)
	}
	if got, want := c.SIP.Trusted[3], netip.MustParsePrefix("2001:db8::1/128"); got != want {
		t.Errorf("bare IPv6 in sip.trusted = %v, want %v", got, want)
	}
	if c.Gateway.MessageTimeout != 30*time.Minute || c.Gateway.MaxDuration != 0 {
		t.Errorf("durations: message_timeout %v, max_duration %v", c.Gateway.MessageTimeout, c.Gateway.MaxDuration)
	}

	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeOver(again, out); err != nil {
		t.Fatalf("decode marshalled config: %v\n%s", err, out)
	}
	for _, key := range schemaKeys() {
		a, _ := lookup(c, key)
		b, _ := lookup(again, key)
		if !sameValue(a, b) {
			t.Errorf("%s: %v after a round trip, was %v", key, b.Interface(), a.Interface())
		}
	}
	if bytes.Contains(out, []byte("client_ca: \"\"")) {
		t.Errorf("marshalled msrp.tls has a client_ca key:\n%s", out)
	}
}

// TestFullFileRefusesNotEffective: full.yaml sets every key, so Parse must refuse exactly the keys whose
// feature has not landed, each by name, with its line.
func TestFullFileRefusesNotEffective(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data)
	if len(features()) == 0 {
		// Every feature has landed: the file that sets every key is valid.
		if err != nil {
			t.Fatalf("Parse(full.yaml) = %v", err)
		}
		return
	}
	if !errors.Is(err, ErrNotEffective) {
		t.Fatalf("Parse(full.yaml) = %v, want ErrNotEffective", err)
	}
	var refused []string
	for _, e := range unjoin(err) {
		var ke *KeyError
		if errors.As(e, &ke) && errors.Is(e, ErrNotEffective) {
			if ke.Line == 0 {
				t.Errorf("%v: no line", e)
			}
			refused = append(refused, ke.Key)
		} else {
			t.Errorf("unexpected error: %v", e)
		}
	}
	var want []string
	for _, key := range schemaKeys() {
		if _, listed := features()[key]; listed {
			want = append(want, key)
		}
	}
	if !slices.Equal(refused, want) {
		t.Errorf("refused %v\nwant    %v", refused, want)
	}
}

func TestEffectiveFile(t *testing.T) {
	c, err := Load("testdata/effective.yaml")
	if err != nil {
		t.Fatalf("Load(effective.yaml) = %v", err)
	}
	if c.Gateway.Message.Reply != ReplyAccept || c.MSRP.ChunkSize != 1024 || c.SIP.Listen[0].Addr != "127.0.0.1:0" {
		t.Errorf("values not read: %+v", c.Gateway.Message)
	}
	if got := c.Gateway.Answer.RURITemplate().Headers(); !slices.Equal(got, []string{"X-RURI"}) {
		t.Errorf("answer.ruri headers = %v", got)
	}
	secure, hp, err := c.MSRP.ListenAddr()
	if secure || hp != "127.0.0.1:0" || err != nil {
		t.Errorf("ListenAddr() = %v, %q, %v", secure, hp, err)
	}
	if hp, _ := c.MSRP.PathHostPort(); hp != "192.0.2.10:2855" {
		t.Errorf("PathHostPort() = %q", hp)
	}
	if slices.Contains(c.NotEffective(), "gateway.message.reply") {
		t.Error("reply: accept is reported as not effective")
	}
}

func TestPartialFileKeepsDefaults(t *testing.T) {
	c, err := Parse([]byte("gateway:\n  setup_timeout: 5s\n  answer:\n    key: \"$ci\"\nsip:\n  auth: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	def.Gateway.SetupTimeout = 5 * time.Second
	def.Gateway.Answer.Key = "$ci"
	for _, key := range schemaKeys() {
		a, _ := lookup(c, key)
		d, _ := lookup(def, key)
		if !sameValue(a, d) {
			t.Errorf("%s = %v, want %v", key, a.Interface(), d.Interface())
		}
	}
	if got := c.Gateway.Answer.KeyTemplate().String(); got != "$ci" {
		t.Errorf("compiled answer key = %q", got)
	}
}

func TestEmptyFilesAreDefaults(t *testing.T) {
	for _, data := range []string{"", "\n", "# only a comment\n", "---\n"} {
		c, err := Parse([]byte(data))
		if err != nil {
			t.Errorf("Parse(%q) = %v", data, err)
			continue
		}
		if c.MSRP.Listen != "msrp://127.0.0.1:2855;tcp" {
			t.Errorf("Parse(%q): msrp.listen = %q", data, c.MSRP.Listen)
		}
	}
}

func TestDurations(t *testing.T) {
	c, err := Parse([]byte("gateway:\n  message_timeout: 90m\n  session_timeout: 1h30m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.MessageTimeout != 90*time.Minute || c.Gateway.SessionTimeout != 90*time.Minute {
		t.Errorf("got %v, %v", c.Gateway.MessageTimeout, c.Gateway.SessionTimeout)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"msrp:\n  transaction_timeout: 30\n", `key msrp.transaction_timeout (line 2, column 24): 30 is a bare number; write a duration with its unit, e.g. "30s"`},
		{"msrp:\n  transaction_timeout: 1.5\n", `key msrp.transaction_timeout (line 2, column 24): 1.5 is a bare number`},
		{"gateway:\n  setup_timeout: soon\n", `key gateway.setup_timeout (line 2, column 18): "soon" is not a duration`},
		{"gateway:\n  setup_timeout: [1s]\n", `key gateway.setup_timeout (line 2, column 18): want a duration like "30s", got a list`},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v\nwant containing %s", tc.yaml, err, tc.want)
		}
	}
}

func TestUnknownKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sip:\n  contact: sip:127.0.0.1\n  listn: [udp:127.0.0.1:5060]\n",
			"key sip.listn (line 3, column 3): unknown key; sip has: listen, contact, outbound_proxy, trusted, credentials, auth, tls"},
		{"sipp: {}\n", "key sipp (line 1, column 1): unknown key; the top level has: sip, msrp"},
		{"msrp:\n  tls:\n    client_ca: /x\n", "key msrp.tls.client_ca (line 3, column 5): unknown key; msrp.tls has: cert, key"},
		{"events:\n  webhooks:\n    - url: http://127.0.0.1/\n      event: [setup_failed]\n",
			"key events.webhooks[0].event (line 4, column 7): unknown key"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v\nwant ErrUnknownKey containing %s", tc.yaml, err, tc.want)
		}
	}
}

func TestTrustedBareAddress(t *testing.T) {
	c, err := decodeDefault()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeOver(c, []byte("sip:\n  trusted: [10.1.2.3, \"fd00::7\", 10.0.0.0/8]\n")); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("fd00::7/128"), netip.MustParsePrefix("10.0.0.0/8"),
	}
	if !slices.Equal(c.SIP.Trusted, want) {
		t.Errorf("trusted = %v, want %v", c.SIP.Trusted, want)
	}
}

// TestValidateErrors has one case per check; each must name its key, and its line when the file sets it.
func TestValidateErrors(t *testing.T) {
	checkRefusals(t, []refusal{
		{"SIP connection idle timeout within reply_wait", "limits:\n  sip_conn_idle_timeout: 3s\n",
			"key limits.sip_conn_idle_timeout (line 2, column 26): 3s: want more than gateway.message.reply_wait (4s)"},
		{"session below message timeout", "gateway:\n  message_timeout: 13h\n",
			"key gateway.session_timeout: 12h0m0s is lower than gateway.message_timeout (13h0m0s)"},
		{"session below message timeout, set", "gateway:\n  session_timeout: 1h\n",
			"key gateway.session_timeout (line 2, column 20): 1h0m0s is lower than gateway.message_timeout (2h0m0s)"},
		{"negative max_duration", "gateway:\n  max_duration: -1s\n", "key gateway.max_duration (line 2, column 17): -1s: want 0 (no limit)"},
		{"zero message timeout", "gateway:\n  message_timeout: 0s\n", "key gateway.message_timeout (line 2, column 20): 0s: want a duration above zero"},
		{"zero session timeout", "gateway:\n  session_timeout: 0s\n", "key gateway.session_timeout (line 2, column 20): 0s: want a duration above zero"},
		{"zero setup timeout", "gateway:\n  setup_timeout: 0s\n", "key gateway.setup_timeout (line 2, column 18): 0s: want a duration above zero"},
		{"zero shutdown timeout", "gateway:\n  shutdown_timeout: -2s\n", "key gateway.shutdown_timeout (line 2, column 21): -2s: want a duration above zero"},
		{"zero transaction timeout", "msrp:\n  transaction_timeout: 0s\n", "key msrp.transaction_timeout (line 2, column 24): 0s: want a duration"},
		{"zero unbound timeout", "msrp:\n  unbound_timeout: 0s\n", "key msrp.unbound_timeout (line 2, column 20): 0s: want"},
		{"negative keepalive", "msrp:\n  keepalive: -1s\n", "key msrp.keepalive (line 2, column 14): -1s: want 0 (off)"},
		{"zero reply wait", "gateway:\n  message:\n    reply_wait: 0s\n", "key gateway.message.reply_wait (line 3, column 17): 0s: want a duration above zero"},
		{"reply wait past Timer F", "gateway:\n  message:\n    reply_wait: 32s\n", "key gateway.message.reply_wait (line 3, column 17): 32s: want less than 32s, when the sender's transaction has given up"},
		{"bad reply", "gateway:\n  message:\n    reply: later\n", `key gateway.message.reply (line 3, column 12): "later": want wait, accept or ok`},
		{"bad log level", "log:\n  level: verbose\n", `key log.level (line 2, column 10): "verbose": want debug, info, warn or error`},
		{"bad log format", "log:\n  format: xml\n", `key log.format (line 2, column 11): "xml": want text or json`},
		{"zero chunk size", "msrp:\n  chunk_size: 0\n", "key msrp.chunk_size (line 2, column 15): 0: want a number above zero"},
		{"zero max message size", "gateway:\n  max_message_size: -5\n", "key gateway.max_message_size (line 2, column 21): -5: want a number above zero"},
		{"chunk size not a number", "msrp:\n  chunk_size: big\n", `key msrp.chunk_size (line 2, column 15): want an integer, got "big"`},
		{"bool not a bool", "msrp:\n  check_from_path: maybe\n", `key msrp.check_from_path (line 2, column 20): want true or false, got "maybe"`},
		{"section not a mapping", "sip: udp\n", `key sip (line 1, column 6): want a mapping of keys (listen, contact`},
		{"list not a list", "sip:\n  listen: udp:127.0.0.1:5060\n", "key sip.listen (line 2, column 11): want a list"},
		{"set twice", "log:\n  level: info\n  level: debug\n", "key log.level (line 3, column 3): set twice (first at line 2)"},
		{"no listener", "sip:\n  listen: []\n", "key sip.listen (line 2, column 11): is empty"},
		{"bad listener network", "sip:\n  listen: [sctp:127.0.0.1:5060]\n", `key sip.listen[0] (line 2, column 12): listener "sctp:127.0.0.1:5060": network "sctp" is not udp, tcp or tls`},
		{"bad listener port", "sip:\n  listen: [udp:127.0.0.1:99999]\n", `key sip.listen[0] (line 2, column 12): listener "udp:127.0.0.1:99999": port "99999"`},
		{"listener without port", "sip:\n  listen: [udp:127.0.0.1]\n", `key sip.listen[0] (line 2, column 12): listener "udp:127.0.0.1"`},
		{"listener twice", "sip:\n  listen: [udp:127.0.0.1:5060, udp:127.0.0.1:5060]\n", "key sip.listen[1] (line 2, column 32): udp:127.0.0.1:5060 is listed twice"},
		{"tls listener without cert", "sip:\n  listen: [tls:127.0.0.1:5061]\n", "key sip.listen[0] (line 2, column 12): tls:127.0.0.1:5061 needs sip.tls.cert and sip.tls.key"},
		{"contact not sip", "sip:\n  contact: http://127.0.0.1/\n", `key sip.contact (line 2, column 12): "http://127.0.0.1/" is not a sip: or sips: URI`},
		{"contact doubled scheme", "sip:\n  contact: sip:sip:127.0.0.1\n", "has the scheme twice"},
		{"contact bad host", "sip:\n  contact: \"sip:gw@bad_host\"\n", `"bad_host" is neither an IP address nor a DNS name`},
		{"outbound proxy", "sip:\n  outbound_proxy: \"proxy.example.net\"\n", `key sip.outbound_proxy (line 2, column 19): "proxy.example.net" is not a sip: or sips: URI`},
		{"trusted empty", "sip:\n  trusted: []\n", "key sip.trusted (line 2, column 12): is empty: no source could create a session"},
		{"trusted garbage", "sip:\n  trusted: [localhost]\n", `key sip.trusted[0] (line 2, column 13): "localhost" is neither an IP address nor a CIDR prefix`},
		{"trusted host bits", "sip:\n  trusted: [10.0.0.1/8]\n", `key sip.trusted[0] (line 2, column 13): "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{"msrp scheme", "msrp:\n  listen: http://127.0.0.1:2855;tcp\n", `key msrp.listen (line 2, column 11): "http://127.0.0.1:2855;tcp": scheme "http" is not msrp or msrps`},
		{"msrp no transport", "msrp:\n  listen: msrp://127.0.0.1:2855\n", `want the transport ";tcp"`},
		{"msrp udp transport", "msrp:\n  listen: msrp://127.0.0.1:2855;udp\n", `want the transport ";tcp"`},
		{"msrp no port", "msrp:\n  listen: msrp://127.0.0.1;tcp\n", `key msrp.listen (line 2, column 11): "msrp://127.0.0.1;tcp": "127.0.0.1" is not HOST:PORT`},
		{"msrp no host", "msrp:\n  listen: msrp://:2855;tcp\n", "the host is empty"},
		{"msrp session id", "msrp:\n  listen: msrp://127.0.0.1:2855/abc;tcp\n", "a listen URI has no session-id path"},
		{"msrps without cert", "msrp:\n  listen: msrps://127.0.0.1:2855;tcp\n", "key msrp.listen (line 2, column 11): msrps://127.0.0.1:2855;tcp is msrps:// and needs msrp.tls.cert and msrp.tls.key"},
		{"advertise port 0", "msrp:\n  advertise: 192.0.2.1:0\n", "key msrp.advertise (line 2, column 14): port 0 is not a port a peer can reach"},
		{"advertise no port", "msrp:\n  advertise: 192.0.2.1\n", `key msrp.advertise (line 2, column 14): "192.0.2.1" is not HOST:PORT`},
		{"wildcard listen without advertise", "msrp:\n  listen: msrp://0.0.0.0:2855;tcp\n", "key msrp.advertise: is empty but msrp.listen msrp://0.0.0.0:2855;tcp is a wildcard address"},
		{"IPv6 wildcard listen without advertise", "msrp:\n  listen: \"msrp://[::]:2855;tcp\"\n", "key msrp.advertise: is empty but msrp.listen msrp://[::]:2855;tcp is a wildcard address"},
		{"wildcard advertise", "msrp:\n  advertise: 0.0.0.0:2855\n", `key msrp.advertise (line 2, column 14): "0.0.0.0:2855" is a wildcard address`},
		{"unknown template variable", "gateway:\n  answer:\n    key: \"$fu:$tx\"\n", "key gateway.answer.key (line 3, column 15): unknown variable $tx"},
		{"notify variable in key", "gateway:\n  message:\n    key: $code\n", "key gateway.message.key (line 3, column 10): unknown variable $code"},
		{"empty key template", "gateway:\n  message:\n    key: \"\"\n", "key gateway.message.key (line 3, column 10): must not be empty"},
		{"empty from template", "gateway:\n  answer:\n    from: ''\n", "key gateway.answer.from (line 3, column 11): must not be empty"},
		{"bad to template", "gateway:\n  answer:\n    to: \"$hdr(X\"\n", `key gateway.answer.to (line 3, column 10): unclosed "$hdr("`},
		{"bad ruri template", "gateway:\n  answer:\n    ruri: \"sip:$\"\n", "key gateway.answer.ruri (line 3, column 16): '$' not followed by a variable name"},
		{"unknown variable in a literal block", "gateway:\n  setup_failed:\n    body: |\n      hello $code\n      and $nope here\n",
			"key gateway.setup_failed.body (line 5, column 11): unknown variable $nope"},
		{"unknown variable in a literal block after a blank line", "gateway:\n  setup_failed:\n    body: |\n\n      x\n        $nope\n",
			"key gateway.setup_failed.body (line 6, column 9): unknown variable $nope"},
		{"unknown variable in a folded block", "gateway:\n  setup_failed:\n    body: >\n      hello\n      $nope\n",
			"key gateway.setup_failed.body (line 3, column 11): unknown variable $nope"},
		{"bad setup_failed body", "gateway:\n  setup_failed:\n    body: \"$code $why\"\n", "key gateway.setup_failed.body (line 3, column 18): unknown variable $why"},
		{"empty notify body", "gateway:\n  setup_failed:\n    body: \"\"\n", "key gateway.setup_failed.body (line 3, column 11): must not be empty"},
		{"bad media type", "gateway:\n  answer:\n    accept_types: [text]\n", `key gateway.answer.accept_types[0] (line 3, column 20): "text" is not a media type`},
		{"no accept types", "gateway:\n  message:\n    accept_types: []\n", "key gateway.message.accept_types (line 3, column 19): is empty"},
		{"bad wrapped type", "gateway:\n  message:\n    accept_wrapped_types: [text/plain, \"a b/c\"]\n", `key gateway.message.accept_wrapped_types[1] (line 3, column 40): "a b/c" is not a media type`},
		{"admin listen", "admin:\n  listen: localhost\n", `key admin.listen (line 2, column 11): "localhost" is not HOST:PORT`},
		{"webhook url scheme", "events:\n  webhooks: [{url: \"ftp://127.0.0.1/\"}]\n", `key events.webhooks[0].url (line 2, column 20): "ftp://127.0.0.1/": want an http:// or https:// URL`},
		{"webhook url", "events:\n  webhooks: [{url: \"http://%zz\"}]\n", `key events.webhooks[0].url (line 2, column 20): "http://%zz" is not a URL`},
		{"webhook no host", "events:\n  webhooks: [{url: \"http:///x\"}]\n", `has no host`},
		{"webhook event", "events:\n  webhooks: [{url: \"http://127.0.0.1/\", events: [session_started, boom]}]\n",
			`key events.webhooks[0].events[1] (line 2, column 67): "boom" is not an event; want one of setup_failed, session_started, session_ended, message_failed`},
		{"limit zero", "limits:\n  max_sessions: 0\n", "key limits.max_sessions (line 2, column 17): 0: want a number above zero"},
		{"limit negative", "limits:\n  max_sip_handlers: -1\n", "key limits.max_sip_handlers (line 2, column 21): -1: want a number above zero"},
		{"zero SIP idle timeout", "limits:\n  sip_conn_idle_timeout: 0s\n", "key limits.sip_conn_idle_timeout (line 2, column 26): 0s: want a duration above zero"},
		{"retry after", "limits:\n  retry_after: 0s\n", "key limits.retry_after (line 2, column 16): 0s: want whole seconds, 1s or more"},
		{"retry after below a second", "limits:\n  retry_after: 500ms\n", "key limits.retry_after (line 2, column 16): 500ms: want whole seconds, 1s or more"},
		{"retry after not whole seconds", "limits:\n  retry_after: 1500ms\n", "key limits.retry_after (line 2, column 16): 1.5s: want whole seconds, 1s or more"},
		{"credential without username", "sip:\n  credentials: [{realm: x, password: y}]\n", "key sip.credentials[0].username: is empty"},
		{"auth half set", "sip:\n  auth: {realm: example.net}\n", "key sip.auth.users_file: is empty but sip.auth.realm is set"},
		{"tls half set", "sip:\n  tls: {key: /k}\n", "key sip.tls.cert: is empty but sip.tls.key is set"},
		{"invite header", "gateway:\n  message:\n    invite_headers: [\"no colon\"]\n", `key gateway.message.invite_headers[0] (line 3, column 22): "no colon" is not a header line`},
		{"outbound proxy transport", "sip:\n  outbound_proxy: \"sip:127.0.0.1:5999;transport=bogus\"\n", `key sip.outbound_proxy (line 2, column 19): "sip:127.0.0.1:5999;transport=bogus": transport "bogus": the gateway sends over udp, tcp or tls`},
		{"outbound proxy port 0", "sip:\n  outbound_proxy: \"sip:127.0.0.1:0\"\n", `key sip.outbound_proxy (line 2, column 19): "sip:127.0.0.1:0": port 0 is no port to send to`},
		{"contact transport", "sip:\n  contact: \"sip:127.0.0.1;transport=ws\"\n", `key sip.contact (line 2, column 12): "sip:127.0.0.1;transport=ws": transport "ws"`},
		{"webhook port out of range", "events:\n  webhooks: [{url: \"http://127.0.0.1:99999/hook\"}]\n", `key events.webhooks[0].url (line 2, column 20): "http://127.0.0.1:99999/hook": port "99999" is not a number from 1 to 65535`},
		{"webhook port 0", "events:\n  webhooks: [{url: \"http://127.0.0.1:0/hook\"}]\n", `port "0" is not a number from 1 to 65535`},
		{"webhook port without host", "events:\n  webhooks: [{url: \"http://:8080/hook\"}]\n", `has no host`},
		{"invite header the gateway writes", "gateway:\n  message:\n    invite_headers: [\"Call-ID: fixed@example\"]\n", `key gateway.message.invite_headers[0] (line 3, column 22): "Call-ID: fixed@example": the gateway writes Call-ID itself`},
		{"invite header compact form", "gateway:\n  message:\n    invite_headers: [\"P-Asserted-Identity: <sip:a@127.0.0.1>\", \"m: <sip:x@127.0.0.1>\"]\n", `key gateway.message.invite_headers[1] (line 3, column 64): "m: <sip:x@127.0.0.1>": the gateway writes m itself`},
		{"contact params comma", "gateway:\n  message:\n    contact_params: \"a,b\"\n", `key gateway.message.contact_params (line 3, column 21): "a,b": parameter name "a,b" is not a token`},
		{"contact params unterminated quote", "gateway:\n  message:\n    contact_params: \"+g.3gpp.icsi-ref=\\\"urn\"\n", `the value of +g.3gpp.icsi-ref is neither a token nor a quoted string`},
		{"contact params space", "gateway:\n  message:\n    contact_params: \"x=a b\"\n", `the value of x is neither a token nor a quoted string`},
		{"contact params line break", "gateway:\n  message:\n    contact_params: \"a\\r\\nVia: x\"\n", "key gateway.message.contact_params (line 3, column 21): \"a\\r\\nVia: x\" contains a line break"},
	})
}

// refusal is a config Parse must refuse, with an error containing want.
type refusal struct{ name, yaml, want string }

// checkRefusals runs each refusal as a subtest.
func checkRefusals(t *testing.T, cases []refusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error:\n%v\nwant one containing:\n%s", err, tc.want)
			}
		})
	}
}

// Values at the edge of what the checks of TestValidateErrors refuse, which a SIP operator does use.
func TestValidateAcceptsUsableValues(t *testing.T) {
	for _, yaml := range []string{
		"sip:\n  outbound_proxy: \"sip:127.0.0.1:5999;transport=TCP;lr\"\n",
		"sip:\n  outbound_proxy: \"sips:proxy.example.net;lr\"\n",
		"sip:\n  contact: \"sip:gw;x=y@127.0.0.1:5060;transport=udp\"\n",
		"events:\n  webhooks: [{url: \"http://127.0.0.1:8080/hook\"}, {url: \"https://[::1]/hook\"}]\n",
		"gateway:\n  message:\n    invite_headers: [\"P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session\", \"Accept-Contact: *;+g.oma.sip-im\"]\n",
		"gateway:\n  message:\n    contact_params: '+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session\"; +g.oma.sip-im'\n",
		"gateway:\n  message:\n    contact_params: 'q=0.5;x=\"a \\\" b\";maddr=[2001:db8::1]'\n",
	} {
		if _, err := Parse([]byte(yaml)); err != nil {
			t.Errorf("Parse refused:\n%s\n%v", yaml, err)
		}
	}
}

// TestValidateWithoutFile: a Config built in Go (the gateway's tests do this) is validated too, its errors
// naming keys without lines.
func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.Gateway.SessionTimeout = time.Minute
	c.Gateway.Answer.Key = "$nope"
	c.SIP.Listen = append(c.SIP.Listen, Listen{Network: "quic", Addr: "127.0.0.1:1"})
	err := c.Validate()
	for _, want := range []string{
		"key gateway.session_timeout: 1m0s is lower than gateway.message_timeout",
		"key gateway.answer.key (column 1): unknown variable $nope",
		`key sip.listen[2]: listener "quic:127.0.0.1:1": network "quic"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant containing %s", err, want)
		}
	}
	if n := len(unjoin(err)); n != 3 {
		t.Errorf("Validate() returned %d errors, want 3: %v", n, err)
	}
	var te *TemplateError
	if !errors.As(err, &te) || te.Key != "gateway.answer.key" || te.Column != 1 {
		t.Errorf("no *TemplateError for gateway.answer.key in %v", err)
	}
}

func TestTemplateErrorPositionInFile(t *testing.T) {
	for _, tc := range []struct {
		yaml         string
		line, column int
	}{
		{"gateway:\n  answer:\n    key: \"$fu:$tx\"\n", 3, 15},  // double-quoted: text starts after the quote
		{"gateway:\n  answer:\n    key: '$fu:$tx'\n", 3, 15},    // single-quoted
		{"gateway:\n  answer:\n    key: $fu:$tx\n", 3, 14},      // plain
		{"gateway:\n  answer: {key: \"a$fx\"}\n", 2, 19},        // flow mapping
		{"gateway:\n  answer:\n    key: |\n      $fx\n", 4, 7},  // literal block: its text
		{"gateway:\n  answer:\n    key: >\n      $fx\n", 3, 10}, // folded block: the indicator
		// YAML counts columns in characters: a non-ASCII character before the error is one column, however many
		// bytes UTF-8 gives it.
		{"gateway:\n  answer:\n    key: \"é:$tx\"\n", 3, 13},              // double-quoted
		{"gateway:\n  answer:\n    key: ü€$tx\n", 3, 12},                  // plain
		{"gateway:\n  answer:\n    key: |\n      ñ\n      é $tx\n", 5, 9}, // literal block, a later line
	} {
		_, err := Parse([]byte(tc.yaml))
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("Parse(%q) = %v, want a *TemplateError", tc.yaml, err)
			continue
		}
		if te.Key != "gateway.answer.key" || te.Line != tc.line || te.Column != tc.column {
			t.Errorf("Parse(%q): %s line %d column %d, want line %d column %d", tc.yaml, te.Key, te.Line, te.Column, tc.line, tc.column)
		}
	}
}

// TestAdminTokenNotInErrors: a refused admin.token is named, never shown. A block scalar (`token: |`) ends in a
// line break, which the check refuses; the message goes to stderr and the service's logs.
func TestAdminTokenNotInErrors(t *testing.T) {
	const secret = "s3cretAdminTok"
	_, err := Parse([]byte("admin:\n  token: |\n    " + secret + "\n"))
	if err == nil {
		t.Fatal("a token with a line break was accepted")
	}
	if !strings.Contains(err.Error(), "key admin.token (line 2, column 10)") {
		t.Errorf("error %q does not name admin.token and its position", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the admin token: %q", err)
	}
}

// TestAdminTokenHTTPCannotCarry: a token that no Authorization header can carry as it is would lock every
// client out of the admin API, msrpgw sessions reading the same config included: HTTP drops white space around
// a header value, so the server never sees a leading or trailing space or tab, and Go's client refuses to send
// other control characters. Such a token is refused with its key and position, and never shown.
func TestAdminTokenHTTPCannotCarry(t *testing.T) {
	for _, tok := range []string{`"s3cret "`, `" s3cret"`, `"s3cret\t"`, `"s3\x01cret"`, `"s3\x7fcret"`} {
		_, err := Parse([]byte("admin:\n  token: " + tok + "\n"))
		if err == nil {
			t.Errorf("admin.token %s was accepted", tok)
			continue
		}
		if !strings.Contains(err.Error(), "key admin.token (line 2, column 10)") || strings.Contains(err.Error(), "s3") {
			t.Errorf("admin.token %s: error %q, want it to name admin.token and its position, without the token", tok, err)
		}
	}
	// Inner spaces, tabs and non-ASCII characters travel.
	for _, tok := range []string{`"s3 cret"`, `"s3\tcret"`, `"sécret"`} {
		if _, err := Parse([]byte("admin:\n  token: " + tok + "\n")); err != nil {
			t.Errorf("admin.token %s refused: %v", tok, err)
		}
	}
}

// TestWebhookPasswordNotInErrors: a refused webhook URL is shown with its password masked, as the
// dispatcher's logs show it.
func TestWebhookPasswordNotInErrors(t *testing.T) {
	const secret = "s3cretHookPw"
	for _, tc := range []struct{ url, want string }{
		{"htps://user:" + secret + "@hooks.example/x", "want an http:// or https:// URL"},
		{"http://user:" + secret + "@/x", "has no host"},
		{"http://user:" + secret + "@[::1/x", "is not a URL"},
	} {
		_, err := Parse([]byte("events:\n  webhooks:\n    - url: \"" + tc.url + "\"\n"))
		if err == nil {
			t.Errorf("url %q was accepted", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), "key events.webhooks[0].url (line 3, column 12)") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("url %q: error %q, want the key, its position and %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("url %q: error shows the password: %q", tc.url, err)
		}
	}
}

// TestCredentialsNotInErrors: sip.credentials written the OpenSIPS uac_auth way, as "user:realm:password"
// strings, is refused without the strings being shown.
func TestCredentialsNotInErrors(t *testing.T) {
	const secret = "s3cretSipPw"
	for _, tc := range []struct{ yaml, want string }{
		{"sip:\n  credentials: [\"alice:example.com:" + secret + "\"]\n", "key sip.credentials[0] (line 2, column 17): want a mapping of keys (realm, username, password)"},
		{"sip:\n  credentials: \"alice:example.com:" + secret + "\"\n", "key sip.credentials (line 2, column 16): want a list"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil {
			t.Errorf("%q was accepted", tc.yaml)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want %q", tc.yaml, err, tc.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q: error shows the password: %q", tc.yaml, err)
		}
	}
}

func TestValidateCollectsAllErrors(t *testing.T) {
	_, err := Parse([]byte("log:\n  level: loud\n  format: xml\nmsrp:\n  chunk_size: 0\n"))
	if n := len(unjoin(err)); n != 3 {
		t.Errorf("got %d errors, want 3: %v", n, err)
	}
	for _, e := range unjoin(err) {
		var ke *KeyError
		if !errors.As(e, &ke) || ke.Line == 0 {
			t.Errorf("%v: not a positioned *KeyError", e)
		}
	}
}

func TestYAMLSyntaxError(t *testing.T) {
	_, err := Parse([]byte("sip:\n  listen: [udp:127.0.0.1:5060\n"))
	if err == nil || !strings.Contains(err.Error(), "line") {
		t.Errorf("Parse(broken YAML) = %v, want an error with a line", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "msrpgw.yaml")
	if err := os.WriteFile(path, []byte("sip:\n  auth:\n    realm: gw\n    users_file: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "key sip.auth.users_file (line 4, column 17)") {
		t.Errorf("Load = %v, want the file name and the key with its position", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("gateway:\n  setup_timeout: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || c.Gateway.SetupTimeout != time.Second {
		t.Errorf("Load = %v, %v", c, err)
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct {
		uri    string
		secure bool
		hp     string
	}{
		{"msrp://127.0.0.1:2855;tcp", false, "127.0.0.1:2855"},
		{"msrps://[::1]:0;tcp", true, "[::1]:0"},
		{"msrp://gw.example.net:2855;tcp", false, "gw.example.net:2855"},
	} {
		secure, hp, err := MSRP{Listen: tc.uri}.ListenAddr()
		if err != nil || secure != tc.secure || hp != tc.hp {
			t.Errorf("ListenAddr(%q) = %v, %q, %v", tc.uri, secure, hp, err)
		}
	}
}

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Listen
		ok   bool
	}{
		{"udp:127.0.0.1:5060", Listen{"udp", "127.0.0.1:5060"}, true},
		{"tcp:[::1]:0", Listen{"tcp", "[::1]:0"}, true},
		{"tls:sip.example.net:5061", Listen{"tls", "sip.example.net:5061"}, true},
		{"udp:127.0.0.1", Listen{}, false},
		{"127.0.0.1:5060", Listen{}, false},
		{"ws:127.0.0.1:80", Listen{}, false},
		{"udp::5060", Listen{}, false},
		{"udp:::1:5060", Listen{}, false},
	} {
		got, err := ParseListen(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseListen(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("ParseListen(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestNotEffectiveRefusal(t *testing.T) {
	// A not-effective key at its default is accepted (written out explicitly, too).
	if _, err := Parse([]byte("sip:\n  auth:\n    realm: \"\"\nlog:\n  level: info\n")); err != nil {
		t.Errorf("keys at their defaults refused: %v", err)
	}
	// sip.auth has landed (TestNotEffectiveList tests the refusal with a table where it has not).
	if _, err := Parse([]byte("sip:\n  auth:\n    realm: gw.example\n    users_file: /etc/users\n")); err != nil {
		t.Errorf("sip.auth refused: %v", err)
	}
	// The limits have all landed.
	if _, err := Parse([]byte("limits:\n  max_sessions: 10\n  max_conns_per_source: 5\n")); err != nil {
		t.Errorf("limits refused: %v", err)
	}
	// The reply modes have all landed.
	for reply, ok := range map[string]bool{"accept": true, "wait": true, "ok": true} {
		_, err := Parse([]byte("gateway:\n  message:\n    reply: " + reply + "\n"))
		if (err == nil) != ok {
			t.Errorf("reply %s: %v", reply, err)
		}
	}
	// An empty list equals the default empty list.
	if _, err := Parse([]byte("events:\n  webhooks:\nsip:\n  credentials: []\n")); err != nil {
		t.Errorf("empty lists refused: %v", err)
	}
}

func TestNotEffectiveList(t *testing.T) {
	if got := Default().NotEffective(); len(got) != len(features()) {
		t.Errorf("NotEffective() = %v, features() lists %d keys", got, len(features()))
	}
	// The mechanism, with a table in which sip.auth has not landed.
	table := map[string]feature{"sip.auth.realm": {}, "sip.auth.users_file": {}}
	got := Default().notEffectiveIn(table)
	for _, key := range []string{"sip.auth.users_file", "sip.auth.realm"} {
		if !slices.Contains(got, key) {
			t.Errorf("notEffectiveIn() lacks %s", key)
		}
	}
	c, err := Parse([]byte("sip:\n  auth:\n    realm: example\n    users_file: /u\n"))
	if err != nil {
		t.Fatal(err)
	}
	errs := c.checkEffectiveIn(table, Default(), func(string) bool { return false })
	want := "key sip.auth.realm (line 3, column 12): not yet effective in this version; leave it at its default ()"
	if len(errs) != 2 || errs[0].Error() != want || !errors.Is(errs[0], ErrNotEffective) {
		t.Errorf("checkEffectiveIn = %v, want 2 errors, the first %q", errs, want)
	}
	for _, key := range []string{"sip.listen", "msrp.listen", "gateway.answer.key", "gateway.setup_failed.body", "admin.listen", "log.level", "log.format", "events.webhooks"} {
		if slices.Contains(got, key) {
			t.Errorf("NotEffective() lists %s", key)
		}
	}
}

// TestFeatureKeysExist keeps the feature table in step with the schema: a renamed key must not linger there.
func TestFeatureKeysExist(t *testing.T) {
	keys := schemaKeys()
	for key, f := range features() {
		if !slices.Contains(keys, key) {
			t.Errorf("features(): %s is not a key of the schema", key)
		}
		if f.at != nil {
			v, _ := lookup(Default(), key)
			if v.Kind() != reflect.String {
				t.Errorf("features(): %s has values but is a %s", key, v.Kind())
			}
		}
	}
}

// TestReferenceDocumentsEveryKey: REFERENCE.md's tables must have one row for every key of the schema and no
// row for a key the loader does not accept, and each row's default must be the embedded default's value, so
// that an operator who copies a documented default gets what leaving the key out gives.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	ref, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := schemaKeys()
	def := Default()
	rows := map[string]string{}    // key -> its default cell
	meaning := map[string]string{} // key -> its meaning cell
	for line := range strings.SplitSeq(string(ref), "\n") {
		// A key row: | `section.key` | `default` | meaning |
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.TrimSpace(cells[0]) != "" {
			continue
		}
		keyCell, defCell := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
		key, ok := strings.CutPrefix(keyCell, "`")
		if !ok || strings.HasPrefix(key, "$") || !strings.HasSuffix(key, "`") {
			continue // a header, separator or template-variable row
		}
		key = strings.TrimSuffix(key, "`")
		if strings.ContainsAny(key, "` ") {
			t.Errorf("REFERENCE.md row %q: want one key in the first cell", keyCell)
			continue
		}
		if _, dup := rows[key]; dup {
			t.Errorf("REFERENCE.md documents `%s` twice", key)
		}
		rows[key] = defCell
		meaning[key] = strings.Join(cells[3:], "|")
		if !slices.Contains(keys, key) {
			t.Errorf("REFERENCE.md documents `%s`, which the config loader does not accept", key)
			continue
		}
		val, ok := strings.CutPrefix(defCell, "`")
		if !ok || !strings.HasSuffix(val, "`") {
			t.Errorf("REFERENCE.md `%s`: default %q is not one `value`", key, defCell)
			continue
		}
		val = strings.TrimSuffix(val, "`")
		// The documented default, as a file would set it, over an empty Config.
		parts := strings.Split(key, ".")
		var doc strings.Builder
		for i, p := range parts[:len(parts)-1] {
			doc.WriteString(strings.Repeat("  ", i) + p + ":\n")
		}
		doc.WriteString(strings.Repeat("  ", len(parts)-1) + parts[len(parts)-1] + ": " + val + "\n")
		got := &Config{}
		if _, err := decodeOver(got, []byte(doc.String())); err != nil {
			t.Errorf("REFERENCE.md `%s`: default %s does not load: %v", key, val, err)
			continue
		}
		a, _ := lookup(got, key)
		d, _ := lookup(def, key)
		if !sameValue(a, d) {
			t.Errorf("REFERENCE.md `%s`: documented default %s, but the default is %v", key, val, d.Interface())
		}
	}
	for _, key := range keys {
		if _, ok := rows[key]; !ok {
			t.Errorf("REFERENCE.md has no row for `%s`", key)
		}
	}
	// The webhook event names the loader accepts are the ones documented.
	for _, e := range WebhookEvents() {
		if !strings.Contains(meaning["events.webhooks"], "`"+e+"`") {
			t.Errorf("REFERENCE.md `events.webhooks` does not name event `%s`", e)
		}
	}
}

func TestDescribe(t *testing.T) {
	c, err := Parse([]byte("sip:\n  listen: [udp:127.0.0.1:5070]\n  outbound_proxy: sip:127.0.0.1:5060\nmsrp:\n  advertise: 192.0.2.1:2855\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Describe()
	for _, want := range []string{
		"SIP listen:          udp:127.0.0.1:5070\n",
		"SIP contact:         sip:127.0.0.1:5060\n",
		"SIP outbound proxy:  sip:127.0.0.1:5060\n",
		"MSRP listen:         msrp://127.0.0.1:2855;tcp\n",
		"MSRP a=path:         msrp://192.0.2.1:2855/<session-id>;tcp\n",
		"Admin listen:        http://127.0.0.1:8080\n",
		"Warning:             sip.contact sip:127.0.0.1:5060 names port 5060, but sip.listen listens on 5070: ",
		"Every key takes effect.\n", // features() is empty in this version
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe() lacks %q:\n%s", want, got)
		}
	}
	if got != c.Describe() {
		t.Error("Describe() is not stable")
	}
}

// A sip.contact whose port no listener has is warned about (peers would send there); a listener on that
// port, a contact without a port (the listener's is added) or a port-0 listener (its address replaces the
// contact) is not.
func TestContactWarning(t *testing.T) {
	for _, tc := range []struct {
		sip  string
		warn bool
	}{
		{"listen: [udp:127.0.0.1:5070, tcp:127.0.0.1:5070]\n  contact: sip:127.0.0.1:5060", true},
		{"listen: [udp:0.0.0.0:5070]\n  contact: sip:gw.example.net:5060;transport=udp", true},
		{"listen: [udp:127.0.0.1:5070, tls:127.0.0.1:5061]\n  contact: sip:127.0.0.1:5061\n  tls: {cert: c.pem, key: k.pem}", false},
		{"listen: [udp:127.0.0.1:5070]\n  contact: sip:127.0.0.1:5070", false},
		{"listen: [udp:127.0.0.1:5070]\n  contact: sip:gw.example.net", false},
		{"listen: [udp:127.0.0.1:0]\n  contact: sip:127.0.0.1:5060", false},
		{"listen: [udp:127.0.0.1:5070]\n  contact: sip:alice@[::1]:5070", false},
		{"listen: [udp:127.0.0.1:5070]\n  contact: sip:127.0.0.1:05070", false},
		{"listen: [\"udp:127.0.0.1:05070\"]\n  contact: sip:127.0.0.1:5070", false},
	} {
		c, err := Parse([]byte("sip:\n  " + tc.sip + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.sip, err)
		}
		if w := c.ContactWarning(); (w != "") != tc.warn {
			t.Errorf("%s: warning %q, want one: %v", tc.sip, w, tc.warn)
		}
	}
}

// unjoin flattens an errors.Join tree into its leaves.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/full.yaml", "testdata/effective.yaml", "default.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "sip: udp", "sip:\n  trusted: [10.0.0.1]\n", "gateway:\n  answer:\n    key: \"$fx\"\n",
		"a: &x {b: 1}\nsip:\n  <<: *x\n", "msrp:\n  transaction_timeout: 30\n", "- 1\n- 2\n", "limits: {max_conns: 99999999999999999999}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a Config with an error")
			}
			return
		}
		if c.Gateway.Answer.KeyTemplate() == nil || c.Gateway.Message.KeyTemplate() == nil {
			t.Fatal("Parse succeeded without compiling the templates")
		}
		_ = c.Describe()
	})
}

// TestAliases: anchors and merge keys work; an alias that contains itself, or aliases of aliases that expand
// beyond any real configuration, are refused instead of recursing or exploding.
func TestAliases(t *testing.T) {
	c, err := Parse([]byte("gateway:\n  answer: &types\n    accept_types: [text/plain]\n  message:\n    <<: *types\n    key: \"$ci\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Gateway.Message.AcceptTypes, []string{"text/plain"}) {
		t.Errorf("merged accept_types = %v", c.Gateway.Message.AcceptTypes)
	}
	if _, err := Parse([]byte("sip: &s\n  contact: sip:127.0.0.1\n  <<: *s\n")); err == nil || !strings.Contains(err.Error(), "refers to itself") {
		t.Errorf("self-referencing alias: %v", err)
	}
	// The schema's deepest lists are events.webhooks[i].events[j]: 1000 aliases of a 1000-event list.
	var bomb strings.Builder
	bomb.WriteString("events:\n  webhooks:\n    - &w {url: \"http://127.0.0.1/\", events: &e [")
	bomb.WriteString(strings.Repeat("session_ended, ", 999) + "session_ended]}\n")
	for range 999 {
		bomb.WriteString("    - *w\n")
	}
	if _, err := Parse([]byte(bomb.String())); !errors.Is(err, errTooComplex) {
		t.Errorf("alias bomb: %v", err)
	}
}

// An unknown variable is reported at the line and column of its '$' in the file (SPEC §6), whatever YAML
// quoting, escapes or line folding the operator used.
func TestTemplateErrorPositionQuotingStyles(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"plain", "gateway:\n  answer:\n    key: $fu:$tx\n"},
		{"single-quoted", "gateway:\n  answer:\n    key: '$fu:$tx'\n"},
		{"single-quoted with ''", "gateway:\n  answer:\n    key: 'it''s $tx'\n"},
		{"double-quoted with escape", "gateway:\n  answer:\n    key: \"\\tx $tx\"\n"},
		{"double-quoted with \\u and \\x escapes", "gateway:\n  answer:\n    key: \"\\u00e9\\xE9\\U0001F600 $tx\"\n"},
		{"non-ASCII before", "gateway:\n  answer:\n    key: \"ééé $tx\"\n"},
		{"double-quoted over two lines", "gateway:\n  answer:\n    key: \"$fu:\n      $tx\"\n"},
		{"double-quoted, escaped line break", "gateway:\n  answer:\n    key: \"$fu:\\\n      $tx\"\n"},
		{"plain over two lines", "gateway:\n  answer:\n    key: $fu-\n      $tx\n"},
		{"plain over a blank line", "gateway:\n  answer:\n    key: $fu-   \n\n      x $tx\n"},
		{"CRLF line ends", "gateway:\r\n  answer:\r\n    key: $fu-\r\n      $tx\r\n"},
	} {
		at := strings.Index(tc.yaml, "$tx")
		before := tc.yaml[:at]
		line := strings.Count(before, "\n") + 1
		col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
		_, err := Parse([]byte(tc.yaml))
		var te *TemplateError
		if !errors.As(err, &te) {
			t.Errorf("%s: Parse = %v, want a *TemplateError", tc.name, err)
			continue
		}
		if te.Line != line || te.Column != col {
			t.Errorf("%s: %v\n\twant line %d, column %d (where $tx is in the file)", tc.name, te, line, col)
		}
	}
}

// A file with a second YAML document ("---" and more) is refused with the line where it begins: the config is
// one document, and what followed would otherwise be ignored.
func TestSecondDocumentRefused(t *testing.T) {
	for _, data := range []string{
		// the second document's invalid value is never looked at
		"log:\n  level: debug\n---\nlog:\n  level: bogus\n",
		// nor its unknown key
		"log:\n  level: debug\n---\nlogg:\n  level: info\n",
		// and a valid setting there is dropped: admin stays on 127.0.0.1:8080
		"log:\n  level: debug\n---\nadmin:\n  listen: \"\"\n",
	} {
		c, err := Parse([]byte(data))
		if err == nil {
			t.Errorf("Parse(%q) = nil error (log.level %q, admin.listen %q): the second document was silently ignored",
				data, c.Log.Level, c.Admin.Listen)
			continue
		}
		if !strings.Contains(err.Error(), "line 3") && !strings.Contains(err.Error(), "document") {
			t.Errorf("Parse(%q) = %v, want an error pointing at the second document", data, err)
		}
	}
}

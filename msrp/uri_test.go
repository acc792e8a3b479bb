package msrp

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in      string
		want    URI
		canon   string
		wantErr bool
	}{
		{in: "msrp://host.example.com:8493/asfd34;tcp", want: URI{Host: "host.example.com", Port: 8493, SessionID: "asfd34", Transport: "tcp"}},
		{in: "MSRPS://Bob@[2001:DB8::1]:2855/a/b+c=;TCP;foo=bar;x", want: URI{Secure: true, User: "Bob", Host: "2001:DB8::1", Port: 2855, SessionID: "a/b+c=", Transport: "tcp", Params: ";foo=bar;x"},
			canon: "msrps://Bob@[2001:DB8::1]:2855/a/b+c=;tcp;foo=bar;x"},
		{in: "msrps://alice@intra.example.com;tcp", want: URI{Secure: true, User: "alice", Host: "intra.example.com", Transport: "tcp"}},
		{in: "msrp://127.0.0.1:2855/abc;ws", want: URI{Host: "127.0.0.1", Port: 2855, SessionID: "abc", Transport: "ws"}},
		{in: "sip://a:1/x;tcp", wantErr: true},
		{in: "msrp://a:1/x", wantErr: true},
		{in: "msrp://a:1/;tcp", wantErr: true},
		{in: "msrp://a:0/x;tcp", wantErr: true},
		{in: "msrp://a:65536/x;tcp", wantErr: true},
		{in: "msrp://a:/x;tcp", wantErr: true},
		{in: "msrp://:1/x;tcp", wantErr: true},
		{in: "msrp://a b:1/x;tcp", wantErr: true},
		{in: "msrp://a:1/x;", wantErr: true},
		{in: "msrp://a:1/x;t-cp", wantErr: true},
		{in: "msrp://a:1/x y;tcp", wantErr: true},
		{in: "msrp://[::1:1/x;tcp", wantErr: true},
		{in: "msrp://[zz]:1/x;tcp", wantErr: true},
		{in: "msrp://a:1/x;tcp;", wantErr: true},
		{in: "msrp://a:1x/x;tcp", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrBadURI) {
					t.Fatalf("ParseURI(%q) = %+v, %v; want ErrBadURI", tt.in, u, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.want {
				t.Fatalf("got %+v\nwant %+v", u, tt.want)
			}
			canon := tt.canon
			if canon == "" {
				canon = tt.in
			}
			if u.String() != canon {
				t.Fatalf("String() = %q, want %q", u.String(), canon)
			}
			back, err := ParseURI(u.String())
			if err != nil || back != u {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestURIEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"msrp://Host.Example.com:1/abc;tcp", "MSRP://host.example.COM:1/abc;TCP", true},
		{"msrp://h:1/abc;tcp", "msrp://h:1/ABC;tcp", false}, // session-id is case-sensitive
		{"msrp://h:1/abc;tcp", "msrps://h:1/abc;tcp", false},
		{"msrp://h:1/abc;tcp", "msrp://h:2/abc;tcp", false},
		{"msrp://h:1/abc;tcp", "msrp://h/abc;tcp", false}, // port vs no port
		{"msrp://h:1/abc;tcp", "msrp://h:1;tcp", false},   // session-id vs none
		{"msrp://h:1/abc;tcp", "msrp://h:1/abc;ws", false},
		{"msrp://u@h:1/abc;tcp;x=y", "msrp://h:1/abc;tcp", true}, // userinfo and params ignored
		{"msrp://[::1]:1/abc;tcp", "msrp://[0:0::1]:1/abc;tcp", true},
		{"msrp://[::ffff:127.0.0.1]:1/abc;tcp", "msrp://127.0.0.1:1/abc;tcp", true},
	}
	for _, tt := range tests {
		a, err1 := ParseURI(tt.a)
		b, err2 := ParseURI(tt.b)
		if err1 != nil || err2 != nil {
			t.Fatalf("%v %v", err1, err2)
		}
		if a.Equal(b) != tt.want || b.Equal(a) != tt.want {
			t.Errorf("%s == %s: got %v, want %v", tt.a, tt.b, a.Equal(b), tt.want)
		}
	}
}

func TestPathAndVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		for _, l := range strings.Split(string(v.wire), "\r\n") {
			p, ok := strings.CutPrefix(l, "a=path:")
			if !ok && strings.HasPrefix(l, "msrp") {
				p, ok = l, true
			}
			if !ok {
				continue
			}
			parse := ParsePath
			if strings.HasPrefix(l, "a=path:") {
				parse = ParseSDPPath // RFC 4975 §8.2: the RFC's own SDP paths all carry ports
			}
			path, err := parse(p)
			if err != nil {
				t.Fatalf("%s: %v", v.title, err)
			}
			if FormatPath(path) != p {
				t.Fatalf("%s: FormatPath = %q, want %q", v.title, FormatPath(path), p)
			}
		}
	}
	if _, err := ParsePath("  "); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := ParsePath("msrp://a:1/x;tcp bogus"); err == nil {
		t.Fatal("path with a bad URI accepted")
	}
}

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewSessionID()
		if len(id) != 22 || !validSessionID(id) || seen[id] {
			t.Fatalf("bad or repeated session-id %q", id)
		}
		seen[id] = true
	}
	for i := 0; i < 1000; i++ {
		id := NewTransactionID()
		if !validTID([]byte(id)) || seen[id] {
			t.Fatalf("bad or repeated transaction id %q", id)
		}
		seen[id] = true
	}
}

func TestAuthority(t *testing.T) {
	u, _ := ParseURI("msrps://[::1]:99/x;tcp")
	if u.Authority() != "[::1]:99" {
		t.Fatal(u.Authority())
	}
	u, _ = ParseURI("msrp://Example.COM:7/x;tcp")
	if u.Authority() != "Example.COM:7" || u.connKey() != "msrp://example.com:7" {
		t.Fatal(u.Authority(), u.connKey())
	}
	// No port is guessed: 2855 is not a default (RFC 4975 §6, §15.4).
	for in, want := range map[string]string{"msrp://relay.example;tcp": "relay.example", "msrp://[::1]/x;tcp": "[::1]"} {
		if u, _ = ParseURI(in); u.Authority() != want {
			t.Errorf("Authority() of %s = %q, want %q", in, u.Authority(), want)
		}
	}
}

// RFC 4975 §6: a numeric IP authority carries a port; a host name need not (only an RFC 4976 AUTH To-Path
// uses that in practice, and ParseURI takes it).
func TestCheckPort(t *testing.T) {
	for in, wantErr := range map[string]bool{
		"msrp://127.0.0.1/abc;tcp":        true,
		"msrps://[2001:db8::1]/abc;tcp":   true,
		"msrp://u@10.1.2.3;tcp":           true,
		"msrp://127.0.0.1:2855/abc;tcp":   false,
		"msrp://[::1]:9/abc;tcp":          false,
		"msrps://relay.example.com;tcp":   false,
		"msrp://host.example.com/abc;tcp": false,
		"msrp://1.2.3/abc;tcp":            false, // not an IP address: a (strange) host name
	} {
		u, err := ParseURI(in)
		if err != nil {
			t.Fatalf("ParseURI(%q): %v", in, err)
		}
		err = u.CheckPort()
		if (err != nil) != wantErr {
			t.Errorf("CheckPort(%s) = %v, want error: %v", in, err, wantErr)
		}
		if wantErr && (!errors.Is(err, ErrNoPort) || !errors.Is(err, ErrBadURI) || !strings.Contains(err.Error(), in)) {
			t.Errorf("CheckPort(%s) = %v, want ErrNoPort and ErrBadURI naming the URI", in, err)
		}
	}
}

// RFC 4975 §8.2: every URI of an SDP a=path carries an explicit port, host name or not.
func TestParseSDPPath(t *testing.T) {
	p, err := ParseSDPPath("msrp://relay.example:9000/r1;tcp msrp://127.0.0.1:2855/abc;tcp")
	if err != nil || len(p) != 2 || p[1].Port != 2855 {
		t.Fatalf("ParseSDPPath = %v, %v", p, err)
	}
	for _, in := range []string{
		"msrp://127.0.0.1/abc;tcp",
		"msrp://bob.example.com/abc;tcp",
		"msrp://relay.example:9000/r1;tcp msrp://[::1]/abc;tcp",
	} {
		p, err := ParseSDPPath(in)
		if !errors.Is(err, ErrNoPort) || !errors.Is(err, ErrBadURI) || p != nil {
			t.Errorf("ParseSDPPath(%q) = %v, %v; want ErrNoPort and ErrBadURI", in, p, err)
		}
		if _, err := ParsePath(in); err != nil {
			t.Errorf("ParsePath(%q): %v; it parses URIs without port", in, err)
		}
	}
	if _, err := ParseSDPPath("msrp://a:1/x;tcp bogus"); errors.Is(err, ErrNoPort) || !errors.Is(err, ErrBadURI) {
		t.Errorf("ParseSDPPath with a bad URI: %v", err)
	}
}

// RFC 4975 §6/§9: "authority as defined in RFC3986", whose reg-name is *( unreserved / pct-encoded /
// sub-delims ); §6.1: "Percent-encoding normalization [RFC3986] applies; that is, if any percent-encoded
// nonreserved characters exist in the authority component, they must be decoded prior to comparison."
func TestParseURIRegNameHost(t *testing.T) {
	for _, s := range []string{
		"msrp://relay~1.example.com:2855/s;tcp", // '~' is unreserved
		"msrp://h%2Dx.example.com:2855/s;tcp",   // pct-encoded '-'
	} {
		if _, err := ParseURI(s); err != nil {
			t.Errorf("ParseURI(%q): %v; want it accepted (RFC 3986 reg-name)", s, err)
		}
	}
	a, err1 := ParseURI("msrp://h%2Dx.example.com:2855/s;tcp")
	b, err2 := ParseURI("msrp://h-x.example.com:2855/s;tcp")
	if err1 != nil || err2 != nil || !a.Equal(b) {
		t.Errorf("§6.1: %%2D-encoded authority vs decoded: Equal=%v (%v, %v); want equal", a.Equal(b), err1, err2)
	}
}

// ParseURI refuses URIs outside the RFC 4975 §9 grammar:
//
//	session-id = 1*( unreserved / "+" / "=" / "/" )      -- no '%'
//	userinfo   = *( unreserved / pct-encoded / sub-delims / ":" )   (RFC 3986)
//	IP-literal = "[" ( IPv6address / IPvFuture ) "]"       (RFC 3986: no zone id, no IPv4)
//	URI-parameter = token ["=" token]                    -- token has no '=' or '/'
func TestParseURIRejectsOffGrammar(t *testing.T) {
	for _, s := range []string{
		"msrp://h.example.com:2855/a%zz;tcp",
		"msrp://a\"<>@h.example.com:2855/s;tcp",
		"msrp://\u00fc@h.example.com:2855/s;tcp",
		"msrp://a\x01b@h.example.com:2855/s;tcp",
		"msrp://a\rX-Injected:1@h.example.com:2855/s;tcp",
		"msrp://[fe80::1%eth0]:2855/s;tcp",
		"msrp://[192.0.2.1]:2855/s;tcp",
		"msrp://h.example.com:2855/s;tcp;a=b=c",
		"msrp://h.example.com:2855/s;tcp;x=a/b",
	} {
		if u, err := ParseURI(s); err == nil {
			t.Errorf("ParseURI(%q) accepted (%+v); not an RFC 4975 §9 MSRP-URI", s, u)
		}
	}
}

// SPEC §4: "Session-ids carry at least 80 random bits." TestNewSessionID checks only length, alphabet and
// uniqueness among 1000 ids, which 32 random bits followed by zeros also pass. Here every one of the bits the
// id claims must take both values across 1000 ids (a truly random bit stays constant with probability 2^-999):
// all 128 bits of a session-id, all 80 bits (16 symbols of 5 bits) of a transaction id and Message-ID.
func TestIDsCarryTheirRandomBits(t *testing.T) {
	const n = 1000
	var ones, zeros [128]bool
	for range n {
		id := NewSessionID()
		raw, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(raw) != 16 {
			t.Fatalf("session-id %q: %d bytes, %v; want 16 bytes of URL-safe base64", id, len(raw), err)
		}
		for i := range 128 {
			if raw[i/8]>>(i%8)&1 == 1 {
				ones[i] = true
			} else {
				zeros[i] = true
			}
		}
	}
	varying := 0
	for i := range 128 {
		if ones[i] && zeros[i] {
			varying++
		}
	}
	if varying < 128 {
		t.Fatalf("only %d of a session-id's 128 bits vary over %d ids, want all (SPEC §4: at least 80 random)", varying, n)
	}

	for _, gen := range []struct {
		name string
		f    func() string
	}{{"transaction id", NewTransactionID}, {"Message-ID", NewMessageID}} {
		var ones, zeros [80]bool
		for range n {
			id := gen.f()
			if len(id) != 16 {
				t.Fatalf("%s %q: %d characters, want 16", gen.name, id, len(id))
			}
			for c := range 16 {
				v := strings.IndexByte(idAlphabet, id[c])
				if v < 0 {
					t.Fatalf("%s %q: %q outside the alphabet", gen.name, id, id[c])
				}
				for b := range 5 {
					if v>>b&1 == 1 {
						ones[c*5+b] = true
					} else {
						zeros[c*5+b] = true
					}
				}
			}
		}
		for i := range 80 {
			if !ones[i] || !zeros[i] {
				t.Fatalf("%s: bit %d (character %d) never varies over %d ids; want 80 random bits", gen.name, i, i/5, n)
			}
		}
	}
}

package sdp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readVector reads a testdata file (stored with LF) and returns it with CRLF line endings, as on the wire.
func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return crlf(b)
}

func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

func TestParseVectors(t *testing.T) {
	tests := []struct {
		file string
		want Media
	}{
		{"rfc4975-4-offer.sdp", Media{Host: "atlanta.example.com", Port: 7654,
			Path:        []string{"msrp://atlanta.example.com:7654/jshA7weztas;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-4-answer.sdp", Media{Host: "biloxi.example.com", Port: 12763,
			Path:        []string{"msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-8.2.sdp", Media{Host: "alice.example.com", Port: 7394,
			Path:        []string{"msrp://alice.example.com:7394/2s93i9ek2a;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-8.7-offer.sdp", Media{Host: "alice.example.com", Port: 7394,
			Path:        []string{"msrp://alice.example.com:7394/2s93i93idj;tcp"},
			AcceptTypes: []string{"message/cpim", "text/plain", "text/html"}, Direction: "sendrecv"}},
		{"rfc4975-8.7-answer.sdp", Media{Host: "bob.example.com", Port: 8493,
			Path:        []string{"msrp://bob.example.com:8493/si438dsaodes;tcp"},
			AcceptTypes: []string{"message/cpim", "text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-11.1-offer.sdp", Media{Host: "alicepc.example.com", Port: 7777,
			Path:        []string{"msrp://alicepc.example.com:7777/iau39soe2843z;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-11.1-answer.sdp", Media{Host: "bob.example.com", Port: 8888,
			Path:        []string{"msrp://bob.example.com:8888/9di4eae923wzd;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rfc4975-14.4.sdp", Media{Secure: true, Host: "atlanta.example.com", Port: 7654,
			Path:        []string{"msrps://atlanta.example.com:7654/jshA7weso3ks;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv",
			Fingerprints: []string{"SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB"}}},
		{"rfc4976-11-offer.sdp", Media{Host: "a.example.com", Port: 1234,
			Path:        []string{"msrp://a.example.com:1234/agic456;tcp"},
			AcceptTypes: []string{"message/cpim", "text/plain", "text/html"}, Direction: "sendrecv"}},
		{"rfc4976-11-answer.sdp", Media{Secure: true, Host: "bob.example.com", Port: 1234,
			Path:        []string{"msrps://relay.example.com:9000/hjdhfha;tcp", "msrps://bob.example.com:1234/fuige;tcp"},
			AcceptTypes: []string{"message/cpim", "text/plain"}, Direction: "sendrecv"}},
		{"opensips-offer.sdp", Media{Host: "127.0.0.1", Port: 2855,
			Path:        []string{"msrp://127.0.0.1:2855/7a57c3704aa8869fa74baa5d0cd3ff35;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"opensips-answer.sdp", Media{Host: "127.0.0.1", Port: 2865,
			Path:        []string{"msrp://127.0.0.1:2865/9f80e7b7828e96543c8441b966ad5173;tcp"},
			AcceptTypes: []string{"text/plain"}, Direction: "sendrecv"}},
		{"rcs-offer-actpass.sdp", Media{Host: "10.20.30.40", Port: 20000,
			Path:        []string{"msrp://10.20.30.40:20000/s8a7d6f5;tcp"},
			AcceptTypes: []string{"message/cpim", "application/im-iscomposing+xml"},
			AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml",
				"application/vnd.gsma.rcs-ft-http+xml", "application/vnd.gsma.rcspushlocation+xml"},
			Setup: "actpass", Direction: "sendrecv", CEMA: true}},
		{"rcs-answer-active.sdp", Media{Secure: true, Host: "2001:db8::10", Port: 9,
			Path:               []string{"msrps://[2001:db8::10]:9/kd83jdh3;tcp"},
			AcceptTypes:        []string{"message/cpim", "application/im-iscomposing+xml"},
			AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml"},
			MaxSize:            1048576, Setup: "active", Direction: "sendrecv",
			Fingerprints: []string{"SHA-256 5E:9F:1C:86:6D:0A:2B:77:3C:04:47:AE:91:CD:E3:0F:6B:45:12:D2:88:39:E0:7C:55:1B:8A:64:F2:93:AB:01"}}},
		// Audio, T.38, a rejected (port 0) and a WebSocket m=message before the usable one; the media-level c=
		// wins; session-level a=setup and a=fingerprint apply; unknown attributes are ignored. Every m= line
		// is kept, with the usable one's place among them, for the answer (RFC 3264 §6).
		{"rcs-multimedia.sdp", Media{Host: "192.0.2.8", Port: 2856,
			Path:        []string{"msrp://192.0.2.8:2856/chosen;tcp"},
			AcceptTypes: []string{"message/cpim", "text/plain"},
			Setup:       "actpass", Fingerprints: []string{"sha-256 AA:BB:CC"}, Direction: "recvonly",
			MLines: []string{"audio 49170 RTP/AVP 0 8", "image 49172 udptl t38", "message 0 TCP/MSRP *",
				"message 2855 TCP/WSS/MSRP *", "message 2856 TCP/MSRP *"}, Index: 4}},
	}
	for _, tt := range tests {
		wire := readVector(t, tt.file)
		forms := map[string][]byte{
			"CRLF":            wire,
			"LF":              bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\n")),
			"no final CRLF":   bytes.TrimSuffix(wire, []byte("\r\n")),
			"trailing spaces": bytes.ReplaceAll(wire, []byte("\r\n"), []byte("  \t\r\n")),
			"blank lines":     bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\r\n\r\n")),
		}
		for form, body := range forms {
			t.Run(tt.file+"/"+form, func(t *testing.T) {
				got, err := Parse(body)
				if err != nil {
					t.Fatalf("Parse: %v\n%s", err, body)
				}
				if !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("Parse:\n got %+v\nwant %+v", *got, tt.want)
				}
			})
		}
	}
}

func TestParseTolerance(t *testing.T) {
	const base = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, m *Media)
	}{
		{"space after attribute colon", base + "m=message 7 TCP/MSRP *\r\na=accept-types:  text/plain  text/html\r\na=path: msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if !reflect.DeepEqual(m.AcceptTypes, []string{"text/plain", "text/html"}) || m.Path[0] != "msrp://h:7/s;tcp" {
					t.Errorf("got %+v", m)
				}
			}},
		{"space after the colon of single-valued attributes", base + "m=message 7 TCP/MSRP *\r\na=setup: active\r\na=max-size:\t1024\r\na=fingerprint: SHA-1 AB:CD\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Setup != "active" || m.MaxSize != 1024 || !reflect.DeepEqual(m.Fingerprints, []string{"SHA-1 AB:CD"}) {
					t.Errorf("got %+v", m)
				}
			}},
		{"several fingerprints, in order (RFC 8122)", base + "m=message 7 TCP/TLS/MSRP *\r\na=fingerprint:SHA-1 AB:CD\r\na=fingerprint:sha-256 EF:01\r\na=accept-types:text/plain\r\na=path:msrps://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if !reflect.DeepEqual(m.Fingerprints, []string{"SHA-1 AB:CD", "sha-256 EF:01"}) {
					t.Errorf("fingerprints %q", m.Fingerprints)
				}
				if out, err := Parse(m.Marshal(1, 1)); err != nil || !reflect.DeepEqual(out.Fingerprints, m.Fingerprints) {
					t.Errorf("after a round trip: %+v %v", out, err)
				}
			}},
		{"media-level fingerprints replace the session-level ones", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\na=fingerprint:SHA-1 00:11\r\nm=message 7 TCP/TLS/MSRP *\r\na=fingerprint:sha-256 EF:01\r\na=accept-types:text/plain\r\na=path:msrps://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if !reflect.DeepEqual(m.Fingerprints, []string{"sha-256 EF:01"}) {
					t.Errorf("fingerprints %q", m.Fingerprints)
				}
			}},
		{"a=connection:new ignored", base + "m=message 7 TCP/MSRP *\r\na=connection:new\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Setup != "" {
					t.Errorf("Setup = %q", m.Setup)
				}
			}},
		{"holdconn means absent", base + "m=message 7 TCP/MSRP *\r\na=setup:holdconn\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Setup != "" {
					t.Errorf("Setup = %q", m.Setup)
				}
			}},
		{"setup case-insensitive", base + "m=message 7 TCP/MSRP *\r\na=setup:ACTIVE\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Setup != "active" {
					t.Errorf("Setup = %q", m.Setup)
				}
			}},
		{"media setup wins over session", strings.Replace(base, "t=0 0\r\n", "t=0 0\r\na=setup:passive\r\na=inactive\r\n", 1) +
			"m=message 7 TCP/MSRP *\r\na=setup:active\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Setup != "active" || m.Direction != "inactive" {
					t.Errorf("Setup = %q Direction = %q", m.Setup, m.Direction)
				}
			}},
		{"proto letter case", base + "m=message 7 tcp/tls/msrp *\r\na=accept-types:text/plain\r\na=path:msrps://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if !m.Secure {
					t.Error("not Secure")
				}
			}},
		{"repeated path and accept-types lines concatenate", base + "m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=accept-types:message/cpim\r\na=path:msrp://r:1/a;tcp\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if len(m.AcceptTypes) != 2 || len(m.Path) != 2 {
					t.Errorf("got %+v", m)
				}
			}},
		{"bad max-size is absent", base + "m=message 7 TCP/MSRP *\r\na=max-size:lots\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.MaxSize != 0 {
					t.Errorf("MaxSize = %d", m.MaxSize)
				}
			}},
		{"session lines out of order and repeated", "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nc=IN IP4 192.0.2.5\r\nb=AS:64\r\ns=again\r\nz=garbage\r\nm=message 7 TCP/MSRP *\r\nb=AS:x\r\ni=title\r\nc=IN IP4 192.0.2.6\r\nc=IN IP4 192.0.2.7\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n",
			func(t *testing.T, m *Media) {
				if m.Host != "192.0.2.6" {
					t.Errorf("Host = %q", m.Host)
				}
			}},
		{"no c= anywhere", "m=message 7 TCP/MSRP *\na=accept-types:text/plain\na=path:msrp://h:7/s;tcp",
			func(t *testing.T, m *Media) {
				if m.Host != "" || m.Port != 7 {
					t.Errorf("got %+v", m)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, m)
		})
	}
}

func TestParseErrors(t *testing.T) {
	const session = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"blank lines only", "\r\n\r\n  \r\n", ErrMalformed},
		{"plain text", "hello, this is not SDP\r\n", ErrMalformed},
		{"JSON", `{"v":0}`, ErrMalformed},
		{"upper-case type", "V=0\r\n", ErrMalformed},
		{"bad version", "v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrMalformed},
		{"bad origin", "v=0\r\no=- x y IN IP4 h\r\ns=-\r\nt=0 0\r\n", ErrMalformed},
		{"bad c= address type", session + "m=message 7 TCP/MSRP *\r\nc=IN IP5 h\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrMalformed},
		{"bad port", session + "m=message 70000 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrMalformed},
		{"CR inside a path", session + "m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/a\rmsrp://h:8/b;tcp\r\n", ErrMalformed},
		{"CR inside a fingerprint", "m=message 1 TCP/MSRP *\na=accept-types:0\na=path:0\na=fingerprint:0\r00", ErrMalformed},
		{"too large", session + strings.Repeat("a=x\r\n", maxBodySize/5+1), ErrMalformed},
		{"no media", session, ErrNoMessageMedia},
		{"audio only", session + "m=audio 4000 RTP/AVP 0\r\n", ErrNoMessageMedia},
		{"port 0", session + "m=message 0 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrNoMessageMedia},
		{"format not *", session + "m=message 7 TCP/MSRP text/plain\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrNoMessageMedia},
		{"udp proto", session + "m=message 7 UDP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n", ErrNoMessageMedia},
		{"websocket proto", session + "m=message 7 TCP/WSS/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;ws\r\n", ErrNoMessageMedia},
		{"no path", session + "m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\n", ErrNoPath},
		{"empty path", session + "m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:\r\n", ErrNoPath},
		{"no accept-types", session + "m=message 7 TCP/MSRP *\r\na=path:msrp://h:7/s;tcp\r\n", ErrNoAcceptTypes},
		{"empty accept-types", session + "m=message 7 TCP/MSRP *\r\na=accept-types: \r\na=path:msrp://h:7/s;tcp\r\n", ErrNoAcceptTypes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", m, err, tt.want)
			}
			if m != nil {
				t.Errorf("Parse returned %+v with an error", m)
			}
			if !strings.HasPrefix(err.Error(), tt.want.Error()) {
				t.Errorf("error %q does not start with the sentinel's text", err)
			}
		})
	}
}

// An m=message on port 0 (RFC 3264 §8.2: the stream removed) is a RemovedError naming its place among the m=
// lines, so the answer can mark it port 0 there; it is still ErrNoMessageMedia. A usable m=message besides it
// wins, and a port-0 line of another media is no removed chat.
func TestParseRemovedStream(t *testing.T) {
	session := "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
	msg0 := "m=message 0 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n"
	_, err := Parse([]byte(session + "m=audio 4000 RTP/AVP 0\r\n" + msg0))
	var rm *RemovedError
	if !errors.As(err, &rm) || !errors.Is(err, ErrNoMessageMedia) {
		t.Fatalf("Parse = %v, want a RemovedError wrapping ErrNoMessageMedia", err)
	}
	if want := []string{"audio 4000 RTP/AVP 0", "message 0 TCP/MSRP *"}; !reflect.DeepEqual(rm.MLines, want) || rm.Index != 1 {
		t.Errorf("RemovedError = %+v, want MLines %q, Index 1", rm, want)
	}
	if m, err := Parse([]byte(session + msg0 + "m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/t;tcp\r\n")); err != nil || m.Index != 1 {
		t.Errorf("a usable m=message after a removed one: %+v, %v", m, err)
	}
	if _, err := Parse([]byte(session + "m=audio 0 RTP/AVP 0\r\n")); errors.As(err, &rm) || !errors.Is(err, ErrNoMessageMedia) {
		t.Errorf("audio on port 0: %v, want ErrNoMessageMedia and no RemovedError", err)
	}
}

// The t= line is kept, so an answer can repeat it (RFC 3264 §6); t=0 0 is the zero value, and Marshal writes
// what Parse read. The times are RFC 4566 §5.9's example.
func TestParseTime(t *testing.T) {
	body := "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=3034423619 3042462419\r\n" +
		"m=message 7 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://h:7/s;tcp\r\n"
	m, err := Parse([]byte(body))
	if err != nil || m.Time != "3034423619 3042462419" {
		t.Fatalf("Parse = %+v, %v; want Time 3034423619 3042462419", m, err)
	}
	if out := string(m.Marshal(1, 1)); !strings.Contains(out, "\r\nt=3034423619 3042462419\r\n") {
		t.Errorf("Marshal wrote\n%s", out)
	}
	if m, err := Parse([]byte(strings.Replace(body, "t=3034423619 3042462419", "t=0 0", 1))); err != nil || m.Time != "" {
		t.Errorf("t=0 0: Time %q, %v; want empty", m.Time, err)
	}
}

// A body with a thousand attributes is parsed, in time linear in its size, with all of them seen.
func TestParseManyAttributes(t *testing.T) {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=message 7 TCP/MSRP *\r\n")
	for range 1000 {
		b.WriteString("a=x-filler:0123456789\r\n")
	}
	b.WriteString("a=accept-types:text/plain\r\n")
	for range 1000 {
		b.WriteString("a=path:msrp://h:7/s;tcp\r\n")
	}
	m, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Path) != 1000 {
		t.Errorf("len(Path) = %d, want 1000", len(m.Path))
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	tests := []Media{
		{Host: "127.0.0.1", Port: 2855, Path: []string{"msrp://127.0.0.1:2855/abc;tcp"},
			AcceptTypes:        []string{"message/cpim", "text/plain", "application/im-iscomposing+xml"},
			AcceptWrappedTypes: []string{"text/plain", "message/imdn+xml", "application/im-iscomposing+xml"},
			MaxSize:            32768, Setup: "actpass", Direction: "sendrecv"},
		{Secure: true, Host: "::1", Port: 9, Path: []string{"msrps://relay:9000/r;tcp", "msrps://[::1]:9/x;tcp"},
			AcceptTypes: []string{"text/plain"}, Setup: "active", Fingerprints: []string{"SHA-256 AB:CD:EF"},
			Direction: "recvonly", CEMA: true},
		{Host: "gw.example.net", Port: 2855, Path: []string{"msrp://gw.example.net:2855/s;tcp"},
			AcceptTypes: []string{"*"}, Direction: "inactive"},
	}
	for _, in := range tests {
		out := in.Marshal(42, 7)
		if !bytes.HasSuffix(out, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("Marshal does not use CRLF line endings:\n%q", out)
		}
		got, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v\n%s", in, err, out)
		}
		if !reflect.DeepEqual(*got, in) {
			t.Errorf("round trip:\n got %+v\nwant %+v\n%s", *got, in, out)
		}
	}
}

// An answer to an offer with other m= lines has exactly the offer's m= lines, in its order (RFC 3264 §6): ours
// in the place of the m=message it takes, every other one rejected with port 0, its media, proto and formats
// as offered.
func TestMarshalRejectsOtherOfferedLines(t *testing.T) {
	offer, err := Parse(readVector(t, "rcs-multimedia.sdp"))
	if err != nil {
		t.Fatal(err)
	}
	m := Media{Host: "127.0.0.1", Port: 2855, Path: []string{"msrp://127.0.0.1:2855/abc;tcp"},
		AcceptTypes: []string{"text/plain"}, Setup: "passive", MLines: offer.MLines, Index: offer.Index}
	var got []string
	for _, l := range strings.Split(string(m.Marshal(1, 1)), "\r\n") {
		if strings.HasPrefix(l, "m=") {
			got = append(got, l)
		}
	}
	want := []string{"m=audio 0 RTP/AVP 0 8", "m=image 0 udptl t38", "m=message 0 TCP/MSRP *",
		"m=message 0 TCP/WSS/MSRP *", "m=message 2855 TCP/MSRP *"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("m= lines %q, want %q", got, want)
	}
	// Ours is the one Parse takes from the answer, at the same place.
	back, err := Parse(m.Marshal(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if back.Port != 2855 || back.Index != 4 || len(back.MLines) != 5 {
		t.Fatalf("the answer parses as port %d at %d of %d m= lines, want 2855 at 4 of 5", back.Port, back.Index, len(back.MLines))
	}
	// An offered line that leaves out its proto or formats is still answered with a whole m= line.
	m.MLines, m.Index = []string{"audio 4000", "message 9 TCP/MSRP *"}, 1
	if body := string(m.Marshal(1, 1)); !strings.Contains(body, "\r\nm=audio 0 * *\r\nm=message 2855 ") {
		t.Fatalf("answer to a short m= line:\n%s", body)
	}
}

func TestMarshalExact(t *testing.T) {
	m := Media{Host: "[2001:db8::1]", Port: 2855, Path: []string{"msrp://[2001:db8::1]:2855/abc;tcp"},
		AcceptTypes: []string{"message/cpim", "text/plain"}, AcceptWrappedTypes: []string{"text/plain"},
		MaxSize: 32768, Setup: "actpass", Fingerprints: []string{"SHA-256 AB"}, Direction: "sendrecv"}
	want := "v=0\r\n" +
		"o=- 123 4 IN IP6 2001:db8::1\r\n" +
		"s=-\r\n" +
		"c=IN IP6 2001:db8::1\r\n" +
		"t=0 0\r\n" +
		"m=message 2855 TCP/MSRP *\r\n" +
		"a=accept-types:message/cpim text/plain\r\n" +
		"a=accept-wrapped-types:text/plain\r\n" +
		"a=max-size:32768\r\n" +
		"a=setup:actpass\r\n" +
		"a=path:msrp://[2001:db8::1]:2855/abc;tcp\r\n" +
		"a=fingerprint:SHA-256 AB\r\n"
	if got := string(m.Marshal(123, 4)); got != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
	// Optional lines are left out, a=path never is.
	bare := Media{Port: 1}
	got := string(bare.Marshal(0, 0))
	for _, absent := range []string{"accept-wrapped-types", "max-size", "setup", "fingerprint", "msrp-cema", "sendrecv"} {
		if strings.Contains(got, absent) {
			t.Errorf("Marshal of an empty Media has %s:\n%s", absent, got)
		}
	}
	if !strings.Contains(got, "\r\na=path:\r\n") || !strings.Contains(got, "c=IN IP4 0.0.0.0\r\n") {
		t.Errorf("Marshal of an empty Media:\n%s", got)
	}
}

// A file transfer offer (RFC 5547) says so in a=file-selector; direction attributes are answered per RFC
// 3264 §6.1 and say who takes messages (RFC 4975 §8.9).
func TestFileSelectorAndDirection(t *testing.T) {
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=message 7654 TCP/MSRP *\r\na=accept-types:image/jpeg\r\na=path:msrp://127.0.0.1:7654/ft1;tcp\r\n" +
		"a=sendonly\r\na=file-selector:name:\"cat.jpg\" type:image/jpeg size:3000\r\n"
	m, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.FileSelector != `name:"cat.jpg" type:image/jpeg size:3000` || m.Direction != SendOnly {
		t.Fatalf("file-selector %q, direction %q", m.FileSelector, m.Direction)
	}
	if m.Receives() || !m.Sends() {
		t.Fatal("a sendonly side sends and does not receive")
	}
	again, err := Parse(m.Marshal(1, 1))
	if err != nil || again.FileSelector != m.FileSelector || again.Direction != SendOnly {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
	for offered, want := range map[string]string{SendOnly: RecvOnly, RecvOnly: SendOnly, Inactive: Inactive, SendRecv: SendRecv, "": SendRecv} {
		if got := AnswerDirection(offered); got != want {
			t.Errorf("AnswerDirection(%q) = %q, want %q", offered, got, want)
		}
	}
	for dir, want := range map[string][2]bool{SendRecv: {true, true}, "": {true, true}, RecvOnly: {true, false}, SendOnly: {false, true}, Inactive: {false, false}} {
		m := &Media{Direction: dir}
		if m.Receives() != want[0] || m.Sends() != want[1] {
			t.Errorf("%q: receives %v sends %v, want %v", dir, m.Receives(), m.Sends(), want)
		}
	}
}

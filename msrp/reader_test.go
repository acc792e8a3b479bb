package msrp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const sendHead = "MSRP t1234 SEND\nTo-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://a:1/r;tcp\nMessage-ID: m1\nByte-Range: 1-*/*\nContent-Type: text/plain\n\n"

// splitReader returns the data in two reads, split at n.
type splitReader struct {
	parts [][]byte
}

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

func TestReaderBodies(t *testing.T) {
	tests := []struct {
		name string
		wire string
		body string // "<nil>" for bodiless
		flag byte
	}{
		{"plain", sendHead + "hello\n-------t1234$\n", "hello", '$'},
		{"dash line in body", sendHead + "a\n-------\nb\n-------t1234$\n", "a\r\n-------\r\nb", '$'},
		{"other tid in body", sendHead + "a\n-------t9999$\nb\n-------t1234+\n", "a\r\n-------t9999$\r\nb", '+'},
		{"own tid without flag", sendHead + "a\n-------t1234x\n-------t1234$\n", "a\r\n-------t1234x", '$'},
		{"own tid prefix of longer tid", sendHead + "a\n-------t12345$\n-------t1234#\n", "a\r\n-------t12345$", '#'},
		{"flag without CRLF", sendHead + "a\n-------t1234$x\n-------t1234$\n", "a\r\n-------t1234$x", '$'},
		{"empty body", sendHead + "\n-------t1234$\n", "", '$'},
		{"empty body lenient", sendHead + "-------t1234$\n", "", '$'},
		{"body with bare CR and LF", sendHead + "a\rb\x00c\n-------t1234$\n", "a\rb\x00c", '$'},
		{"bodiless", "MSRP t1234 SEND\nTo-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://a:1/r;tcp\nMessage-ID: m1\n-------t1234$\n", "<nil>", '$'},
		{"lower-case header names", "MSRP t1234 SEND\nto-path: msrp://b:1/s;tcp\nFROM-PATH:  msrp://a:1/r;tcp \nmessage-id: m1\n-------t1234$\n", "<nil>", '$'},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := crlf(tt.wire)
			check := func(m *Message, err error, how string) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				if tt.body == "<nil>" {
					if m.Body != nil {
						t.Fatalf("%s: body %q, want none", how, m.Body)
					}
				} else if m.Body == nil || string(m.Body) != tt.body {
					t.Fatalf("%s: body %q, want %q", how, m.Body, tt.body)
				}
				if m.Flag != tt.flag || m.TransactionID != "t1234" || m.MessageID() != "m1" ||
					m.ToPath[0].SessionID != "s" || m.FromPath[0].SessionID != "r" {
					t.Fatalf("%s: %+v", how, m)
				}
			}
			// Every split point, then one byte at a time; a second frame follows to check the boundary.
			two := append(append([]byte{}, wire...), wire...)
			for i := 0; i <= len(wire); i++ {
				rd := NewReader(&splitReader{parts: [][]byte{append([]byte{}, two[:i]...), append([]byte{}, two[i:]...)}}, Limits{})
				for k := 0; k < 2; k++ {
					m, err := rd.ReadMessage()
					check(m, err, "split")
				}
				if _, err := rd.ReadMessage(); err != io.EOF {
					t.Fatalf("after two frames: %v, want EOF", err)
				}
			}
			rd := NewReader(iotest.OneByteReader(bytes.NewReader(two)), Limits{})
			for k := 0; k < 2; k++ {
				m, err := rd.ReadMessage()
				check(m, err, "one byte")
			}
			// Canonical header names after parsing.
			m, _ := NewReader(bytes.NewReader(wire), Limits{}).ReadMessage()
			if m.Headers[0].Name != HdrMessageID {
				t.Fatalf("header name %q not canonical", m.Headers[0].Name)
			}
		})
	}
}

func TestReaderErrors(t *testing.T) {
	to := "To-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://a:1/r;tcp\n"
	tests := []struct {
		name    string
		wire    string
		lim     Limits
		code    int  // ProtocolError code, 0 = not a ProtocolError
		framing bool // wraps ErrFraming
		eof     error
	}{
		{name: "not msrp", wire: "GET / HTTP/1.1\n\n", framing: true},
		{name: "bad tid", wire: "MSRP t$12 SEND\n" + to + "-------t$12$\n", framing: true},
		{name: "no method", wire: "MSRP t1234\n" + to + "-------t1234$\n", framing: true},
		{name: "bare LF", wire: "MSRP t1234 SEND\nTo-Path: x\x00\x01", framing: true},
		{name: "header too large", wire: "MSRP t1234 SEND\n" + to + "X: " + strings.Repeat("a", 100) + "\n-------t1234$\n", lim: Limits{MaxHeaderBytes: 64}, framing: true},
		// The end line's LF at offset 128 of the frame: one byte over MaxHeaderBytes (one byte less is read).
		{name: "header one byte over", wire: "MSRP t1234 SEND\n" + to + "X: " + strings.Repeat("a", 36) + "\n-------t1234$\n", lim: Limits{MaxHeaderBytes: 128}, framing: true},
		{name: "truncated", wire: "MSRP t1234 SEND\n" + to, eof: io.ErrUnexpectedEOF},
		{name: "truncated body", wire: "MSRP t1234 SEND\n" + to + "Content-Type: a/b\n\nabc", eof: io.ErrUnexpectedEOF},
		{name: "lower-case method", wire: "MSRP t1234 send\n" + to + "-------t1234$\n", code: 400},
		{name: "missing From-Path", wire: "MSRP t1234 SEND\nTo-Path: msrp://b:1/s;tcp\nMessage-ID: x\n-------t1234$\n", code: 400},
		{name: "paths swapped", wire: "MSRP t1234 SEND\nFrom-Path: msrp://a:1/r;tcp\nTo-Path: msrp://b:1/s;tcp\n-------t1234$\n", code: 400},
		{name: "bad To-Path URI", wire: "MSRP t1234 SEND\nTo-Path: http://b/\nFrom-Path: msrp://a:1/r;tcp\n-------t1234$\n", code: 400},
		{name: "To-Path IPv4 without port", wire: "MSRP t1234 SEND\nTo-Path: msrp://127.0.0.1/s;tcp\nFrom-Path: msrp://a:1/r;tcp\n-------t1234$\n", code: 400},
		{name: "From-Path IPv6 without port", wire: "MSRP t1234 SEND\nTo-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://[::1]/r;tcp\n-------t1234$\n", code: 400},
		{name: "REPORT From-Path IP without port", wire: "MSRP t1234 REPORT\nTo-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://a:1/x;tcp msrp://192.0.2.1/r;tcp\nStatus: 000 200 OK\n-------t1234$\n", code: 400},
		{name: "AUTH From-Path IP without port", wire: "MSRP t1234 AUTH\nTo-Path: msrp://relay.example;tcp\nFrom-Path: msrp://192.0.2.1/r;tcp\n-------t1234$\n", code: 400},
		{name: "header without colon", wire: "MSRP t1234 SEND\n" + to + "Message-ID x\n-------t1234$\n", code: 400},
		{name: "bad Byte-Range", wire: "MSRP t1234 SEND\n" + to + "Byte-Range: 5-3/10\n-------t1234$\n", code: 400},
		{name: "body without Content-Type", wire: "MSRP t1234 SEND\n" + to + "Message-ID: x\n\nabc\n-------t1234$\n", code: 400},
		{name: "response with body", wire: "MSRP t1234 200 OK\n" + to + "Content-Type: a/b\n\nabc\n-------t1234$\n", code: 400},
		{name: "chunk too large", wire: "MSRP t1234 SEND\n" + to + "Message-ID: x\nContent-Type: a/b\n\n" + strings.Repeat("z", 5000) + "\n-------t1234$\n", lim: Limits{MaxChunkBytes: 100}, code: 413},
	}
	next := crlf("MSRP next1 200 OK\n" + to + "-------next1$\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				wire := append(crlf(tt.wire), next...)
				if tt.name == "bare LF" {
					wire = []byte(strings.ReplaceAll(tt.wire, "\x00\x01", "\n"))
				}
				var src io.Reader = bytes.NewReader(wire)
				if tt.eof != nil {
					src = bytes.NewReader(crlf(tt.wire))
				}
				if oneByte {
					src = iotest.OneByteReader(src)
				}
				rd := NewReader(src, tt.lim)
				m, err := rd.ReadMessage()
				var pe *ProtocolError
				switch {
				case tt.eof != nil:
					if !errors.Is(err, tt.eof) {
						t.Fatalf("got %v, %v; want %v", m, err, tt.eof)
					}
				case tt.framing:
					if !errors.Is(err, ErrFraming) {
						t.Fatalf("got %v, %v; want ErrFraming", m, err)
					}
				default:
					if !errors.As(err, &pe) || pe.Code != tt.code || pe.TransactionID != "t1234" || pe.Message == nil {
						t.Fatalf("got %v, %v; want ProtocolError %d", m, err, tt.code)
					}
					// The stream stays usable.
					m, err := rd.ReadMessage()
					if err != nil || m.TransactionID != "next1" {
						t.Fatalf("frame after the bad one: %v, %v", m, err)
					}
				}
			}
		})
	}
}

func TestReaderReleasesBigBuffer(t *testing.T) {
	body := strings.Repeat("y", 200<<10)
	wire := crlf(sendHead + body + "\n-------t1234$\n")
	rd := NewReader(bytes.NewReader(wire), Limits{})
	m, err := rd.ReadMessage()
	if err != nil || len(m.Body) != len(body) {
		t.Fatalf("%v %d", err, len(m.Body))
	}
	if rd.buf != nil {
		t.Fatalf("reader kept a %d-byte buffer after the frame", len(rd.buf))
	}
}

func TestWriterTIDCollision(t *testing.T) {
	m := &Message{TransactionID: "abcd", Method: MethodSend, ToPath: []URI{{Host: "b", Port: 1, SessionID: "s", Transport: "tcp"}},
		FromPath: []URI{{Host: "a", Port: 1, SessionID: "r", Transport: "tcp"}}, Headers: []Header{{HdrMessageID, "x"}, {HdrContentType, "text/plain"}},
		Body: []byte("x\r\n-------abcd$\r\ny"), Flag: '$'}
	var buf bytes.Buffer
	if err := WriteMessage(&buf, m); err != nil {
		t.Fatal(err)
	}
	if m.TransactionID == "abcd" {
		t.Fatal("transaction id that occurs in the body was kept")
	}
	got, err := NewReader(&buf, Limits{}).ReadMessage()
	if err != nil || !bytes.Equal(got.Body, m.Body) || got.TransactionID != m.TransactionID {
		t.Fatalf("%v %q", err, got.Body)
	}
	// Responses never carry a body and always end with '$'.
	r := &Message{TransactionID: "abcd", StatusCode: 200, Comment: "OK", ToPath: m.FromPath, FromPath: m.ToPath, Body: []byte("x"), Flag: '+'}
	if out := string(r.AppendTo(nil)); out != "MSRP abcd 200 OK\r\nTo-Path: msrp://a:1/r;tcp\r\nFrom-Path: msrp://b:1/s;tcp\r\n-------abcd$\r\n" {
		t.Fatalf("%q", out)
	}
}

func TestMessageAccessors(t *testing.T) {
	m := &Message{Headers: []Header{{"Status", "000 413 Too big"}, {"content-type", "a/b"}}}
	if code, c, err := m.Status(); code != 413 || c != "Too big" || err != nil {
		t.Fatal(code, c, err)
	}
	if m.FailureReport() != "yes" || m.SuccessReport() || m.ContentType() != "a/b" {
		t.Fatal("defaults")
	}
	for v, want := range map[string]string{"No": "no", "PARTIAL": "partial", "yes": "yes", "sometimes": "yes"} {
		if got := (&Message{Headers: []Header{{HdrFailureReport, v}}}).FailureReport(); got != want {
			t.Errorf("Failure-Report: %s read as %q, want %q", v, got, want)
		}
	}
	if _, err := m.ByteRange(); !errors.Is(err, ErrNoHeader) {
		t.Fatal(err)
	}
	m.SetHeader("Byte-Range", "1-*/*")
	if m.Headers[len(m.Headers)-1].Name != "content-type" {
		t.Fatal("Content-Type is not last after SetHeader")
	}
	for _, bad := range []string{"", "000", "000 20", "001 200", "000 200x", "abc 200", "000 000", "000 099"} {
		if _, _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) accepted", bad)
		}
	}
	for _, tc := range []struct {
		in string
		br ByteRange
		ok bool
	}{
		{"1-25/25", ByteRange{1, 25, 25}, true}, {"1-*/*", ByteRange{1, -1, -1}, true}, {"1-0/0", ByteRange{1, 0, 0}, true},
		{"138-148/148", ByteRange{138, 148, 148}, true}, {"0-1/1", ByteRange{}, false}, {"2-1/5", ByteRange{2, 1, 5}, true},
		{"3-1/5", ByteRange{}, false}, {"1-10/5", ByteRange{}, false}, {"1-2", ByteRange{}, false},
		{"1-2/9999999999999999999", ByteRange{}, false}, {"-1/1", ByteRange{}, false}, {"1-x/1", ByteRange{}, false},
	} {
		br, err := ParseByteRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && br != tc.br) {
			t.Errorf("ParseByteRange(%q) = %+v, %v", tc.in, br, err)
		}
		if tc.ok && br.String() != tc.in {
			t.Errorf("String() = %q", br.String())
		}
	}
}

// RFC 4975 §6: in a request's To-Path and From-Path an IP address carries a port; a host name need not, and
// an RFC 4976 AUTH To-Path may omit it for any host. Responses are not checked: nobody answers them, and
// refusing one would only turn it into a transaction timeout. A refused request keeps its parsed paths, so
// that its 400 goes back to the sender.
func TestReaderPathPorts(t *testing.T) {
	ok := []struct{ name, wire string }{
		{"host names without port", "MSRP t1234 SEND\nTo-Path: msrp://b.example/s;tcp\nFrom-Path: msrp://a.example/r;tcp\n-------t1234$\n"},
		{"AUTH To-Path IP without port", "MSRP t1234 AUTH\nTo-Path: msrps://192.0.2.7;tcp\nFrom-Path: msrps://192.0.2.1:9892/r;tcp\n-------t1234$\n"},
		{"response with IP without port", "MSRP t1234 200 OK\nTo-Path: msrp://192.0.2.1/r;tcp\nFrom-Path: msrp://[2001:db8::1]/s;tcp\n-------t1234$\n"},
	}
	for _, tt := range ok {
		if m, err := NewReader(bytes.NewReader(crlf(tt.wire)), Limits{}).ReadMessage(); err != nil {
			t.Errorf("%s: %v, %v; want it accepted", tt.name, m, err)
		}
	}
	wire := "MSRP t1234 SEND\nTo-Path: msrp://b:1/s;tcp\nFrom-Path: msrp://10.0.0.1/r;tcp\nMessage-ID: m\n-------t1234$\n"
	_, err := NewReader(bytes.NewReader(crlf(wire)), Limits{}).ReadMessage()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != 400 {
		t.Fatalf("got %v, want ProtocolError 400", err)
	}
	if !strings.Contains(pe.Reason, "From-Path") || !strings.Contains(pe.Reason, "msrp://10.0.0.1/r;tcp") || !strings.Contains(pe.Reason, "no port") {
		t.Errorf("reason %q does not say which URI lacks what", pe.Reason)
	}
	if m := pe.Message; len(m.ToPath) != 1 || len(m.FromPath) != 1 || m.FromPath[0].Host != "10.0.0.1" {
		t.Errorf("refused request kept paths %v / %v, want both", m.ToPath, m.FromPath)
	}
}

// Header names are case-insensitive (RFC 4975 §9 quotes them as ABNF literals): the reader stores every known
// one in its canonical spelling, whatever case it came in, so that comparing names with == works.
func TestReaderCanonicalHeaderNames(t *testing.T) {
	for _, name := range knownHeaders[2:] { // To-Path and From-Path are not in Headers
		for _, spelt := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			wire := "MSRP t1234 SEND\r\nTo-Path: msrp://b:1/s;tcp\r\nFrom-Path: msrp://a:1/r;tcp\r\n" +
				spelt + ": x\r\n-------t1234$\r\n"
			m, err := NewReader(strings.NewReader(wire), Limits{}).ReadMessage()
			if m == nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("%s: %v", spelt, err)
				}
				m = pe.Message // a Byte-Range or Status of "x" is malformed; the name is what matters here
			}
			if len(m.Headers) != 1 || m.Headers[0].Name != name {
				t.Errorf("header %q parsed as %q, want %q", spelt, m.Headers[0].Name, name)
			}
		}
	}
}

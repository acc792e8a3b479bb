package cpim

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

func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// forms returns a CRLF document in its wire form and in the LF-only form some peers send.
func forms(wire []byte) map[string][]byte {
	return map[string][]byte{"CRLF": wire, "LF": lf(wire)}
}

func TestParseRFC3862(t *testing.T) {
	wire := readVector(t, "rfc3862-5.1.cpim")
	wantHeaders := []Header{
		{"From", "MR SANDERS <im:piglet@100akerwood.com>"},
		{"To", "Depressed Donkey <im:eeyore@100akerwood.com>"},
		{"DateTime", "2000-12-13T13:40:00-08:00"},
		{"Subject", "the weather will be fine today"},
		{"Subject", ";lang=fr beau temps prevu pour aujourd'hui"},
		{"NS", "MyFeatures <mid:MessageFeatures@id.foo.com>"},
		{"Require", "MyFeatures.VitalMessageOption"},
		{"MyFeatures.VitalMessageOption", "Confirmation-requested"},
		{"MyFeatures.WackyMessageOption", "Use-silly-font"},
	}
	wantContent := []Header{{"Content-type", "text/xml; charset=utf-8"}, {"Content-ID", "<1234567890@foo.com>"}}
	const wantBody = "<body>\r\nHere is the text of my message.\r\n</body>"
	// As printed (with the outer MIME header), and as it arrives in MSRP or SIP (the transport carries it).
	withoutOuter := wire[bytes.Index(wire, []byte("From:")):]
	for name, doc := range map[string][]byte{"with outer header": wire, "as carried": withoutOuter} {
		for form, doc := range forms(doc) {
			t.Run(name+"/"+form, func(t *testing.T) {
				m, err := Parse(doc)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(m.Headers, wantHeaders) {
					t.Errorf("Headers:\n got %q\nwant %q", m.Headers, wantHeaders)
				}
				if !reflect.DeepEqual(m.ContentHeaders, wantContent) {
					t.Errorf("ContentHeaders:\n got %q\nwant %q", m.ContentHeaders, wantContent)
				}
				if want := string(crlfIf(form, wantBody)); string(m.Body) != want {
					t.Errorf("Body = %q, want %q", m.Body, want)
				}
				if m.From() != "im:piglet@100akerwood.com" || m.To() != "im:eeyore@100akerwood.com" {
					t.Errorf("From, To = %q, %q", m.From(), m.To())
				}
				if m.ContentType() != "text/xml; charset=utf-8" {
					t.Errorf("ContentType = %q", m.ContentType())
				}
				if m.Get("MyFeatures.WackyMessageOption") != "Use-silly-font" {
					t.Errorf("Get(namespaced) = %q", m.Get("MyFeatures.WackyMessageOption"))
				}
			})
		}
	}
	// The RFC 3862 layout is what Marshal writes: a document in it comes back byte for byte.
	m, err := Parse(withoutOuter)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Marshal(); !bytes.Equal(got, withoutOuter) {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, withoutOuter)
	}
}

func crlfIf(form, s string) []byte {
	if form == "LF" {
		return lf([]byte(s))
	}
	return []byte(s)
}

// RFC 4975 §11.4 prints the CPIM document without the empty line before the inner Content-Type.
func TestParseRFC4975NoBlankLine(t *testing.T) {
	chunk1 := readVector(t, "rfc4975-11.4-chunk1.cpim")
	chunk2 := readVector(t, "rfc4975-11.4-chunk2.cpim")
	if len(chunk1) != 137 {
		t.Fatalf("first chunk is %d octets, the RFC's Byte-Range says 137", len(chunk1))
	}
	whole := append(append([]byte{}, chunk1...), chunk2...)
	for form, doc := range forms(whole) {
		t.Run(form, func(t *testing.T) {
			m, err := Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			want := []Header{{"To", "Bob <sip:bob@example.com>"}, {"From", "Alice <sip:alice@example.com>"},
				{"DateTime", "2006-05-15T15:02:31-03:00"}}
			if !reflect.DeepEqual(m.Headers, want) {
				t.Errorf("Headers = %q", m.Headers)
			}
			if m.ContentType() != "text/plain" || string(m.Body) != "ABCD1234567890" {
				t.Errorf("ContentType, Body = %q, %q", m.ContentType(), m.Body)
			}
			if m.From() != "sip:alice@example.com" || m.To() != "sip:bob@example.com" {
				t.Errorf("From, To = %q, %q", m.From(), m.To())
			}
			// Marshal emits the RFC 3862 form, which parses to the same message.
			out := m.Marshal()
			if !bytes.Contains(out, []byte("DateTime: 2006-05-15T15:02:31-03:00\r\n\r\nContent-Type: text/plain\r\n\r\nABCD")) {
				t.Errorf("Marshal:\n%s", out)
			}
			again, err := Parse(out)
			if err != nil || !reflect.DeepEqual(again, m) {
				t.Errorf("Parse(Marshal()) = %+v, %v; want %+v", again, err, m)
			}
		})
	}
}

func TestParseRFC5438IM(t *testing.T) {
	for form, doc := range forms(readVector(t, "rfc5438-7.1.1.3.cpim")) {
		t.Run(form, func(t *testing.T) {
			m, err := Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.IMDNMessageID(); got != "34jk324j" {
				t.Errorf("IMDNMessageID = %q", got)
			}
			if got := m.DispositionNotification(); !reflect.DeepEqual(got, []string{PositiveDelivery, NegativeDelivery}) {
				t.Errorf("DispositionNotification = %q", got)
			}
			if !m.Wants(PositiveDelivery) || m.Wants(Display) {
				t.Error("Wants is wrong")
			}
			want := []Header{{"Content-type", "text/plain"}, {"Content-length", "12"}}
			if !reflect.DeepEqual(m.ContentHeaders, want) || string(m.Body) != "Hello World" {
				t.Errorf("ContentHeaders, Body = %q, %q", m.ContentHeaders, m.Body)
			}
			if m.IsControl() {
				t.Error("an IM is not a control payload")
			}
		})
	}
}

func TestParseRFC5438Notifications(t *testing.T) {
	tests := []struct {
		file, id, kind, status string
	}{
		{"rfc5438-7.2.1.1.cpim", "d834jied93rf", KindDelivery, StatusDelivered},
		{"rfc5438-7.2.1.2.cpim", "dfjkleriou432333", KindDisplay, StatusDisplayed},
	}
	for _, tt := range tests {
		for form, doc := range forms(readVector(t, tt.file)) {
			t.Run(tt.file+"/"+form, func(t *testing.T) {
				m, err := Parse(doc)
				if err != nil {
					t.Fatal(err)
				}
				if m.IMDNMessageID() != tt.id || m.ContentType() != IMDNType || !m.IsControl() {
					t.Errorf("IMDNMessageID, ContentType, IsControl = %q, %q, %v", m.IMDNMessageID(), m.ContentType(), m.IsControl())
				}
				if m.DispositionNotification() != nil {
					t.Errorf("an IMDN asks for %q", m.DispositionNotification())
				}
				n, err := ParseNotification(m.Body)
				if err != nil {
					t.Fatal(err)
				}
				want := Notification{MessageID: "34jk324j", DateTime: "2008-04-04T12:16:49-05:00",
					RecipientURI: "im:bob@example.com", OriginalRecipient: "im:bob@example.com", Kind: tt.kind, Status: tt.status}
				if *n != want {
					t.Errorf("ParseNotification:\n got %+v\nwant %+v", *n, want)
				}
			})
		}
	}
}

func TestParseHeaderCase(t *testing.T) {
	doc := "from: <sip:lower@example.com>\r\nFROM: <sip:upper@example.com>\r\nTo: <sip:bob@example.com>\r\n" +
		"NS: imdn <urn:ietf:params:imdn>\r\nimdn.message-id: wrongcase\r\n\r\n" +
		"CONTENT-TYPE: text/plain\r\n\r\nhi"
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if m.From() != "" || m.Get("from") != "<sip:lower@example.com>" || m.Get("FROM") != "<sip:upper@example.com>" {
		t.Errorf("From() = %q, Get(from) = %q, Get(FROM) = %q", m.From(), m.Get("from"), m.Get("FROM"))
	}
	if m.IMDNMessageID() != "" {
		t.Errorf("imdn.message-id is not imdn.Message-ID, got %q", m.IMDNMessageID())
	}
	if m.ContentType() != "text/plain" {
		t.Errorf("MIME header names are case-insensitive: ContentType = %q", m.ContentType())
	}
	// Without the empty line, a lower-case MIME header still starts the encapsulated entity.
	m, err = Parse([]byte("From: <sip:a@example.com>\r\ncontent-type: text/plain\r\n\r\nhi"))
	if err != nil || m.ContentType() != "text/plain" || len(m.Headers) != 1 || string(m.Body) != "hi" {
		t.Errorf("Parse = %+v, %v", m, err)
	}
}

func TestParseKeepsValuesVerbatim(t *testing.T) {
	doc := "From: \"Dr. \\\"Who\\\"\" <sip:who@example.com>\r\n" +
		"To: <sip:bob@example.com>\r\n" +
		"Subject: tab\\there \\u00e9t\\u00e9 back\\\\slash\r\n" +
		"Subject:;lang=fr \\u00e9t\\u00e9\r\n" +
		"X-Spacey:   three spaces\r\n\r\n" +
		"Content-Type: text/plain\r\n\r\nbody\r\n\r\nwith blank lines\r\n"
	m, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("Subject"); got != `tab\there \u00e9t\u00e9 back\\slash` {
		t.Errorf("Subject = %q", got)
	}
	if got := m.Headers[3].Value; got != `;lang=fr \u00e9t\u00e9` {
		t.Errorf("Subject with lang = %q", got)
	}
	if got := m.Get("X-Spacey"); got != "  three spaces" {
		t.Errorf("X-Spacey = %q", got)
	}
	if m.From() != "sip:who@example.com" {
		t.Errorf("From() = %q", m.From())
	}
	if string(m.Body) != "body\r\n\r\nwith blank lines\r\n" {
		t.Errorf("Body = %q", m.Body)
	}
	if got := m.Marshal(); string(got) != doc {
		t.Errorf("Marshal changed the document:\n%q\nwant\n%q", got, doc)
	}
}

func TestParseMIMEFolding(t *testing.T) {
	m, err := Parse([]byte("From: <a:b>\r\n\r\nContent-Type: text/plain;\r\n\tcharset=utf-8\r\nContent-Disposition: inline\r\n\r\nx"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ContentType() != "text/plain; charset=utf-8" || len(m.ContentHeaders) != 2 {
		t.Errorf("ContentHeaders = %q", m.ContentHeaders)
	}
}

func TestParseEmptyEntity(t *testing.T) {
	for _, doc := range []string{
		"From: <a:b>\r\nTo: <c:d>\r\n\r\nContent-Type: text/plain\r\n\r\n",
		"From: <a:b>\r\nTo: <c:d>\r\n\r\nContent-Type: text/plain\r\n",
		"From: <a:b>\r\nTo: <c:d>\r\nContent-Type: text/plain",
	} {
		m, err := Parse([]byte(doc))
		if err != nil || len(m.Body) != 0 || m.ContentType() != "text/plain" {
			t.Errorf("Parse(%q) = %+v, %v", doc, m, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"empty", ""},
		{"only CPIM headers", "From: <sip:a@example.com>\r\nTo: <sip:b@example.com>\r\n"},
		{"nothing after the empty line", "From: <sip:a@example.com>\r\n\r\n"},
		{"no MIME headers", "From: <sip:a@example.com>\r\n\r\nHello world"},
		{"empty line then empty line", "From: <sip:a@example.com>\r\n\r\n\r\nHello"},
		{"not a header", "Hello, how are you?\r\n\r\nContent-Type: text/plain\r\n\r\nx"},
		{"blank in a name", "Bad Name: x\r\n\r\nContent-Type: text/plain\r\n\r\nx"},
		{"empty name", ": x\r\n\r\nContent-Type: text/plain\r\n\r\nx"},
		{"separator in a name", "Fr<om: x\r\n\r\nContent-Type: text/plain\r\n\r\nx"},
		{"bad MIME header", "From: <a:b>\r\n\r\nContent-Type: text/plain\r\nnot a header\r\n\r\nx"},
		{"outer header block without end", "Content-Type: message/cpim\r\nFrom: <a:b>"},
		{"too many headers", strings.Repeat("X: y\r\n", maxHeaders+1) + "\r\nContent-Type: text/plain\r\n\r\nx"},
		{"too many MIME headers", "From: <a:b>\r\n\r\n" + strings.Repeat("Content-X: y\r\n", maxHeaders+1) + "\r\nx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.doc))
			if !errors.Is(err, ErrMalformed) || m != nil {
				t.Errorf("Parse = %+v, %v; want ErrMalformed", m, err)
			}
		})
	}
}

func TestIMDNNamespacePrefix(t *testing.T) {
	tests := []struct {
		name, headers string
		id            string
		disp          []string
	}{
		{"any declared prefix", "NS: rcs <urn:ietf:params:imdn>\r\nrcs.Message-ID: abc\r\nimdn.Message-ID: notthis\r\nrcs.Disposition-Notification: Display\r\n",
			"abc", []string{"display"}},
		{"URN case-insensitive", "NS: i <URN:IETF:PARAMS:IMDN>\r\ni.Message-ID: abc\r\n", "abc", nil},
		{"undeclared conventional prefix", "imdn.Message-ID: abc\r\nimdn.Disposition-Notification: positive-delivery;x=1 , negative-delivery,\r\n",
			"abc", []string{"positive-delivery", "negative-delivery"}},
		{"imdn prefix taken by another namespace", "NS: imdn <urn:example:other>\r\nimdn.Message-ID: abc\r\n", "", nil},
		{"empty disposition", "NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: abc\r\nimdn.Disposition-Notification:\r\n", "abc", nil},
		{"no IMDN headers", "Subject: hi\r\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte("From: <a:b>\r\nTo: <c:d>\r\n" + tt.headers + "\r\nContent-Type: text/plain\r\n\r\nx"))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.IMDNMessageID(); got != tt.id {
				t.Errorf("IMDNMessageID = %q, want %q", got, tt.id)
			}
			if got := m.DispositionNotification(); !reflect.DeepEqual(got, tt.disp) {
				t.Errorf("DispositionNotification = %q, want %q", got, tt.disp)
			}
		})
	}
}

func TestIsControl(t *testing.T) {
	notification := []Header{{"Content-Disposition", "Notification; handling=required"}}
	tests := []struct {
		ct      string
		headers []Header
		want    bool
	}{
		{"application/im-iscomposing+xml", nil, true},
		{"Application/IM-isComposing+XML; charset=utf-8", nil, true},
		{"message/imdn+xml", nil, true},
		{"", nil, true},
		{"application/xml", notification, true},
		{"text/plain", nil, false},
		{"text/plain", []Header{{"Content-Disposition", "inline"}}, false},
		{"message/cpim", nil, false},
	}
	for _, tt := range tests {
		if got := IsControl(tt.ct, tt.headers); got != tt.want {
			t.Errorf("IsControl(%q, %q) = %v, want %v", tt.ct, tt.headers, got, tt.want)
		}
	}
}

func TestMessageIsControl(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{"From: <a:b>\r\n\r\nContent-Type: text/plain\r\n\r\nhi", false},
		{"From: <a:b>\r\n\r\nContent-Length: 2\r\n\r\nhi", false}, // MIME default text/plain
		{"From: <a:b>\r\n\r\nContent-Length: 0\r\n\r\n", true},    // nothing at all to show
		{"From: <a:b>\r\n\r\nContent-Type: application/im-iscomposing+xml\r\n\r\n<x/>", true},
		{"From: <a:b>\r\n\r\nContent-Type: application/xml\r\nContent-Disposition: notification\r\n\r\n<x/>", true},
	}
	for _, tt := range tests {
		m, err := Parse([]byte(tt.doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.IsControl(); got != tt.want {
			t.Errorf("IsControl(%q) = %v, want %v", tt.doc, got, tt.want)
		}
	}
}

func TestEntityType(t *testing.T) {
	for doc, want := range map[string]string{
		"From: <a:b>\r\n\r\nContent-Type: text/html\r\n\r\n<b>hi</b>": "text/html",
		"From: <a:b>\r\n\r\nContent-Length: 2\r\n\r\nhi":              "text/plain", // RFC 2045 §5.2
		"From: <a:b>\r\n\r\nContent-Length: 0\r\n\r\n":                "",           // no entity to type
	} {
		m, err := Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.EntityType(); got != want {
			t.Errorf("EntityType(%q) = %q, want %q", doc, got, want)
		}
	}
}

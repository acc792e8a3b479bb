package cpim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"
)

func seedVectors(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.cpim"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(crlf(b))
	}
}

// FuzzParse checks that Parse never panics, fails only with ErrMalformed, and that what it accepts comes
// back unchanged through Marshal -> Parse.
func FuzzParse(f *testing.F) {
	seedVectors(f)
	f.Add([]byte("From: <a:b>\nContent-Type: text/plain\n\nx"))
	f.Add([]byte("Content-Type: message/cpim\r\n\r\nFrom: <a:b>\r\n\r\nContent-Type: text/plain\r\n \tfolded\r\n\r\n"))
	f.Add(cpimWithEncoding("text/plain", "base64", "R3LDvMOfZSBhdXMgS8O2bG4=\r\n"))
	f.Add(cpimWithEncoding("text/plain", "quoted-printable", "Gr=C3=BC=C3=9Fe =\r\naus"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := Parse(doc)
		if err != nil {
			if m != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %+v, %v", m, err)
			}
			return
		}
		_ = m.From()
		_ = m.IMDNMessageID()
		_ = m.DispositionNotification()
		_ = m.IsControl()
		if b, err := m.DecodedBody(); err != nil && (b != nil || !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownEncoding)) {
			t.Fatalf("DecodedBody = %q, %v", b, err)
		}
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal()) failed: %v\n%q", err, m.Marshal())
		}
		if !reflect.DeepEqual(again.Headers, m.Headers) || !reflect.DeepEqual(again.ContentHeaders, m.ContentHeaders) ||
			!bytes.Equal(again.Body, m.Body) {
			t.Fatalf("round trip changed the message:\n got %+v\nwant %+v", again, m)
		}
	})
}

// FuzzParseNotification checks that ParseNotification never panics, fails only with ErrMalformed, and that
// what it accepts comes back unchanged through Marshal -> ParseNotification.
func FuzzParseNotification(f *testing.F) {
	for _, name := range []string{"rfc5438-7.2.1.1.cpim", "rfc5438-7.2.1.2.cpim"} {
		m, err := Parse(readVector(f, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Body)
	}
	f.Add((&Notification{MessageID: "x", DateTime: "d", Kind: KindProcessing, Status: StatusProcessed}).Marshal())
	f.Add([]byte(`<imdn><message-id>1</message-id><display-notification><status><error/></status></display-notification></imdn>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err != nil {
			if n != nil || !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseNotification = %+v, %v", n, err)
			}
			return
		}
		again, err := ParseNotification(n.Marshal())
		if err != nil {
			t.Fatalf("ParseNotification(Marshal()) failed: %v\n%s", err, n.Marshal())
		}
		if isName(n.Status) && utf8.ValidString(n.MessageID+n.DateTime+n.RecipientURI+n.OriginalRecipient) && *again != *n {
			t.Fatalf("round trip changed the notification:\n got %+v\nwant %+v", again, n)
		}
	})
}

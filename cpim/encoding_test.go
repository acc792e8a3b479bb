package cpim

import (
	"bytes"
	"errors"
	"testing"
)

// cpimWithEncoding is an RFC 3862 §2 document whose encapsulated entity carries a Content-Transfer-Encoding.
func cpimWithEncoding(contentType, cte, body string) []byte {
	doc := "From: Alice <sip:alice@example.com>\r\n" +
		"To: Bob <sip:bob@example.com>\r\n" +
		"DateTime: 2006-05-15T15:02:31-03:00\r\n" +
		"\r\n" +
		"Content-Type: " + contentType + "\r\n"
	if cte != "" {
		doc += "Content-Transfer-Encoding: " + cte + "\r\n"
	}
	return []byte(doc + "\r\n" + body)
}

// The encapsulated content comes back as its sender meant it: base64 (RFC 4648 §10 vector, UTF-8 text, a
// 76-character-line body as RFC 2045 §6.8 encoders write it), quoted-printable (the RFC 2045 §6.7 soft line
// break example, UTF-8 octets) and the identity encodings, whatever the case of the encoding's name.
func TestDecodedBody(t *testing.T) {
	fox := "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. "
	cases := []struct{ cte, body, want string }{
		{"", "Hello", "Hello"},
		{"7bit", "Hello\r\nthere", "Hello\r\nthere"},
		{"8bit", "Grüße", "Grüße"},
		{"binary", "\x00\xff\r\n", "\x00\xff\r\n"},
		{"base64", "Zm9vYmFy", "foobar"},
		{"BASE64", "R3LDvMOfZSBhdXMgS8O2bG4=", "Grüße aus Köln"},
		{" base64 ", "R3LDvMOfZSBhdXMgS8O2bG4=\r\n", "Grüße aus Köln"},
		{"base64", "VGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4gVGhlIHF1aWNrIGJy\r\n" +
			"b3duIGZveCBqdW1wcyBvdmVyIHRoZSBsYXp5IGRvZy4gVGhlIHF1aWNrIGJyb3duIGZveCBqdW1w\r\n" +
			"cyBvdmVyIHRoZSBsYXp5IGRvZy4g", fox},
		{"quoted-printable", "Now's the time =\r\nfor all folk to come=\r\n to the aid of their country.",
			"Now's the time for all folk to come to the aid of their country."},
		{"Quoted-Printable", "Gr=C3=BC=C3=9Fe aus K=C3=B6ln", "Grüße aus Köln"},
	}
	for _, tc := range cases {
		m, err := Parse(cpimWithEncoding("text/plain; charset=utf-8", tc.cte, tc.body))
		if err != nil {
			t.Fatalf("%q: Parse: %v", tc.cte, err)
		}
		got, err := m.DecodedBody()
		if err != nil || string(got) != tc.want {
			t.Errorf("%q %q: decoded %q, %v; want %q", tc.cte, tc.body, got, err, tc.want)
		}
	}
}

// An encoding that cannot be undone is an error the caller can branch on (ErrUnknownEncoding: refuse the
// content as not understood); content broken in a known encoding is malformed.
func TestDecodedBodyRefused(t *testing.T) {
	cases := []struct {
		cte, body string
		want      error
	}{
		{"x-uuencode", "begin 644 x\r\n", ErrUnknownEncoding},
		{"gzip", "\x1f\x8b", ErrUnknownEncoding},
		{"base64", "Zm9v!mFy", ErrMalformed},
		{"base64", "Zm9vYmF", ErrMalformed}, // truncated
	}
	for _, tc := range cases {
		m, err := Parse(cpimWithEncoding("text/plain", tc.cte, tc.body))
		if err != nil {
			t.Fatalf("%q: Parse: %v", tc.cte, err)
		}
		if got, err := m.DecodedBody(); !errors.Is(err, tc.want) || got != nil {
			t.Errorf("%s %q: %q, %v; want %v", tc.cte, tc.body, got, err, tc.want)
		}
	}
}

// Without an encoding to undo, the body is returned as it is, not copied (the gateway's hot path).
func TestDecodedBodyIdentityNotCopied(t *testing.T) {
	m, err := Parse(cpimWithEncoding("text/plain", "8bit", "Hello"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.DecodedBody()
	if len(got) == 0 || &got[0] != &m.Body[0] || !bytes.Equal(got, []byte("Hello")) {
		t.Fatal("identity encoding copied the body")
	}
}

package sdp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSplitBodySDP(t *testing.T) {
	sdp := readVector(t, "rfc4975-8.2.sdp")
	got, others, err := SplitBody("application/sdp", sdp)
	if err != nil || !bytes.Equal(got, sdp) || others != nil {
		t.Fatalf("SplitBody = %q, %v, %v", got, others, err)
	}
	if _, _, err := SplitBody("Application/SDP; charset=utf-8", sdp); err != nil {
		t.Errorf("media type with parameters: %v", err)
	}
}

func TestSplitBodyRCSMultipart(t *testing.T) {
	body := readVector(t, "rcs-invite-multipart.txt")
	for form, b := range map[string][]byte{"CRLF": body, "LF": bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))} {
		t.Run(form, func(t *testing.T) {
			sdp, others, err := SplitBody(`multipart/mixed;boundary="boundary1"`, b)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(sdp)
			if err != nil {
				t.Fatalf("Parse(SDP part): %v\n%s", err, sdp)
			}
			if m.Port != 20000 || m.Setup != "actpass" {
				t.Errorf("SDP part parsed as %+v", m)
			}
			if len(others) != 1 || others[0].ContentType != "message/cpim" {
				t.Fatalf("others = %+v", others)
			}
			if !bytes.HasPrefix(others[0].Body, []byte("From: <sip:anonymous@anonymous.invalid>")) ||
				!bytes.HasSuffix(others[0].Body, []byte("Hello from RCS")) {
				t.Errorf("CPIM part body = %q", others[0].Body)
			}
		})
	}
}

func TestSplitBodyNested(t *testing.T) {
	inner := "--in\r\nContent-Type: text/plain\r\n\r\nhello\r\n--in\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--in--\r\n"
	outer := "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n" + inner +
		"\r\n--out\r\nX-Part: 2\r\n\r\nno type\r\n--out--\r\n"
	sdp, others, err := SplitBody("multipart/related; boundary=out", []byte(outer))
	if err != nil {
		t.Fatal(err)
	}
	if string(sdp) != "v=0" {
		t.Errorf("sdp = %q", sdp)
	}
	if len(others) != 2 || others[0].ContentType != "text/plain" || string(others[0].Body) != "hello" ||
		others[1].ContentType != "text/plain" || others[1].Header.Get("X-Part") != "2" {
		t.Errorf("others = %+v", others)
	}
}

func TestSplitBodyErrors(t *testing.T) {
	twoParts := "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: message/cpim\r\n\r\nx\r\n--b--\r\n"
	tests := []struct {
		name, ct, body string
		want           error
	}{
		{"no body", "", "", ErrNoSDP},
		{"text", "text/plain", "hello", ErrNoSDP},
		{"empty sdp", "application/sdp", " \r\n", ErrNoSDP},
		{"multipart without sdp", "multipart/mixed; boundary=b", twoParts, ErrNoSDP},
		{"broken content-type", "multipart/mixed; boundary=", twoParts, ErrMalformed},
		{"no boundary", "multipart/mixed", twoParts, ErrMalformed},
		{"wrong boundary", "multipart/mixed; boundary=zz", twoParts, ErrMalformed},
		{"too deep", "multipart/mixed; boundary=b0", nested(maxNestDepth + 1), ErrMalformed},
		{"too many parts", "multipart/mixed; boundary=b", strings.Repeat("--b\r\n\r\nx\r\n", maxParts+1) + "--b--\r\n", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := SplitBody(tt.ct, []byte(tt.body))
			if !errors.Is(err, tt.want) {
				t.Errorf("SplitBody = %v, want %v", err, tt.want)
			}
		})
	}
}

// nested builds n multiparts inside each other, boundaries b0 (outermost) to b<n-1>.
func nested(n int) string {
	body := "--bX\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--bX--\r\n"
	for i := n - 1; i >= 0; i-- {
		b := "b" + string(rune('0'+i))
		next := "b" + string(rune('0'+i+1))
		if i == n-1 {
			next = "bX"
		}
		body = "--" + b + "\r\nContent-Type: multipart/mixed; boundary=" + next + "\r\n\r\n" + body + "\r\n--" + b + "--\r\n"
	}
	return body
}

package cpim

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
)

// TransferEncoding returns the Content-Transfer-Encoding of the encapsulated entity (RFC 2045 §6), lower
// case, "" when it has none. RFC 3862 §2 makes the encapsulated entity a MIME entity, so it may carry one.
func (m *Message) TransferEncoding() string {
	for _, h := range m.ContentHeaders {
		if strings.EqualFold(h.Name, "Content-Transfer-Encoding") {
			return strings.ToLower(strings.TrimSpace(h.Value))
		}
	}
	return ""
}

// DecodedBody returns the content of the encapsulated entity with its Content-Transfer-Encoding undone: what
// a receiver of the bare content (a SIP MESSAGE, binary-safe and without transfer encodings, RFC 3428) must
// get, since the encoding is lost with the CPIM headers. 7bit, 8bit, binary and none are the body as it is
// (not copied); base64 and quoted-printable are decoded into a new slice. An encoding RFC 2045 does not
// define (an x-token) is an error wrapping ErrUnknownEncoding; content that is not valid in its encoding, one
// wrapping ErrMalformed.
func (m *Message) DecodedBody() ([]byte, error) {
	switch cte := m.TransferEncoding(); cte {
	case "", "7bit", "8bit", "binary":
		return m.Body, nil
	case "base64":
		// RFC 2045 §6.8: the encoded lines are at most 76 characters, broken by CRLF; line breaks and other
		// blanks are not part of the data.
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, m.Body)
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, fmt.Errorf("%w: base64 content: %w", ErrMalformed, err)
		}
		return out[:n], nil
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(m.Body)))
		if err != nil {
			return nil, fmt.Errorf("%w: quoted-printable content: %w", ErrMalformed, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEncoding, clip(cte))
	}
}

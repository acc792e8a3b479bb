package sdp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Bounds on what SplitBody walks, so a hostile body cannot make it do unbounded work.
const (
	maxParts     = 32 // leaf parts in one body
	maxNestDepth = 4  // multipart inside multipart
)

// Part is one body part of a multipart SIP body.
type Part struct {
	ContentType string               // the part's Content-Type ("text/plain" when it has none, RFC 2046 §5.1)
	Header      textproto.MIMEHeader // all of the part's headers, Content-Type included
	Body        []byte
}

// SplitBody returns the SDP of a SIP body and the other parts: for "application/sdp" the body itself; for
// "multipart/mixed" (or related/alternative, or any multipart) the first application/sdp part plus the
// remaining parts (e.g. the message/cpim first message of an RCS INVITE, PROTOCOL.md §4.3). Nested multiparts
// are walked and their leaves returned flat. ErrNoSDP when there is none (no body, another type, or a
// multipart without SDP — others then still holds that multipart's parts); ErrMalformed when the
// Content-Type or the multipart framing is broken.
func SplitBody(contentType string, body []byte) (sdp []byte, others []Part, err error) {
	if strings.TrimSpace(contentType) == "" {
		return nil, nil, fmt.Errorf("%w: no Content-Type (body of %d bytes)", ErrNoSDP, len(body))
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Content-Type %q: %v", ErrMalformed, clip(contentType), err)
	}
	switch {
	case mt == "application/sdp":
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, nil, fmt.Errorf("%w: empty application/sdp body", ErrNoSDP)
		}
		return body, nil, nil
	case strings.HasPrefix(mt, "multipart/"):
		var parts []Part
		if err := collectParts(params["boundary"], body, 0, &parts); err != nil {
			return nil, nil, err
		}
		for i, p := range parts {
			pmt, _, _ := mime.ParseMediaType(p.ContentType)
			if pmt == "application/sdp" {
				others = append(others, parts[:i]...)
				others = append(others, parts[i+1:]...)
				return p.Body, others, nil
			}
		}
		return nil, parts, fmt.Errorf("%w: %s body with %d part(s), none application/sdp", ErrNoSDP, mt, len(parts))
	default:
		return nil, nil, fmt.Errorf("%w: Content-Type %s", ErrNoSDP, mt)
	}
}

// collectParts appends the leaf parts of a multipart body to out, descending into nested multiparts.
func collectParts(boundary string, body []byte, depth int, out *[]Part) error {
	if boundary == "" {
		return fmt.Errorf("%w: multipart Content-Type without boundary", ErrMalformed)
	}
	if depth >= maxNestDepth {
		return fmt.Errorf("%w: multipart nested deeper than %d", ErrMalformed, maxNestDepth)
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	found := 0
	for {
		// NextRawPart, not NextPart: we forward parts as they came, without quoted-printable decoding.
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if found > 0 {
				break // a missing close delimiter after complete parts: keep what we have
			}
			return fmt.Errorf("%w: multipart boundary %q: %v", ErrMalformed, clip(boundary), err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return fmt.Errorf("%w: multipart part %d: %v", ErrMalformed, found+1, err)
		}
		found++
		ct := p.Header.Get("Content-Type")
		if ct == "" {
			ct = "text/plain"
		}
		if mt, params, err := mime.ParseMediaType(ct); err == nil && strings.HasPrefix(mt, "multipart/") {
			if err := collectParts(params["boundary"], data, depth+1, out); err != nil {
				return err
			}
			continue
		}
		if len(*out) >= maxParts {
			return fmt.Errorf("%w: more than %d body parts", ErrMalformed, maxParts)
		}
		*out = append(*out, Part{ContentType: ct, Header: p.Header, Body: data})
	}
	if found == 0 {
		return fmt.Errorf("%w: multipart body has no part with boundary %q", ErrMalformed, clip(boundary))
	}
	return nil
}

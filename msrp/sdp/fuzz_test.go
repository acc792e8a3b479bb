package sdp

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse checks that Parse never panics, always returns exactly one of a Media or a sentinel-wrapped
// error, and that whatever it accepts survives a Marshal -> Parse round trip.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.sdp"))
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
	f.Add([]byte("m=message 7 TCP/MSRP *\na=accept-types: text/plain\na=path:msrp://h:7/s;tcp"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=message 0 TCP/MSRP *\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body)
		if err != nil {
			if m != nil {
				t.Fatalf("Parse returned a Media and an error: %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoMessageMedia) &&
				!errors.Is(err, ErrNoPath) && !errors.Is(err, ErrNoAcceptTypes) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if len(m.Path) == 0 || len(m.AcceptTypes) == 0 || m.Port <= 0 || m.Port > 65535 {
			t.Fatalf("Parse accepted an unusable media: %+v", m)
		}
		again, err := Parse(m.Marshal(1, 1))
		if err != nil {
			// A Host that is not an address token (pion reads one field) cannot be put back in c=.
			return
		}
		if again.Port != m.Port || !slices.Equal(again.AcceptTypes, m.AcceptTypes) || !slices.Equal(again.Path, m.Path) ||
			!slices.Equal(again.AcceptWrappedTypes, m.AcceptWrappedTypes) || !slices.Equal(again.Fingerprints, m.Fingerprints) ||
			again.MaxSize != m.MaxSize || again.Setup != m.Setup || again.Secure != m.Secure ||
			again.Direction != m.Direction || again.CEMA != m.CEMA || again.FileSelector != m.FileSelector {
			t.Fatalf("round trip changed the media:\n got %+v\nwant %+v", again, m)
		}
	})
}

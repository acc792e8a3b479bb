package msrp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// vector is one example message of testdata/msrp-test-vectors.txt.
type vector struct {
	title      string
	notes      []string
	wire       []byte
	bodyOctets int // -1 when not annotated
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/msrp-test-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vector
	var cur *vector
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "### "):
			cur = &vector{title: l[4:], bodyOctets: -1}
			lines = nil
		case cur == nil:
		case strings.HasPrefix(l, "#: "):
			cur.notes = append(cur.notes, l[3:])
			if v, ok := strings.CutPrefix(l, "#: body-octets="); ok {
				n, _ := strconv.Atoi(strings.Fields(v)[0])
				cur.bodyOctets = n
			}
		case l == "%%END":
			cur.wire = []byte(strings.Join(lines, "\r\n") + "\r\n")
			out = append(out, *cur)
			cur = nil
		default:
			lines = append(lines, l)
		}
	}
	return out
}

// msrpVectors returns the vectors that are MSRP frames.
func msrpVectors(t testing.TB) []vector {
	var out []vector
	for _, v := range loadVectors(t) {
		if bytes.HasPrefix(v.wire, []byte("MSRP ")) {
			out = append(out, v)
		}
	}
	return out
}

func TestRFCVectors(t *testing.T) {
	vs := msrpVectors(t)
	if len(vs) < 30 {
		t.Fatalf("only %d MSRP vectors found", len(vs))
	}
	for _, v := range vs {
		t.Run(v.title, func(t *testing.T) {
			omitsPaths := strings.Contains(strings.Join(v.notes, " "), "To-Path/From-Path omitted") ||
				strings.Contains(strings.Join(v.notes, " "), "To-Path and From-Path are OMITTED")
			missingEnd := strings.Contains(v.title, "end-line missing")
			for _, split := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(v.wire)
				if split {
					src = iotest.OneByteReader(src)
				}
				m, err := NewReader(src, Limits{}).ReadMessage()
				switch {
				case missingEnd:
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("incomplete frame: got %v, %v; want io.ErrUnexpectedEOF", m, err)
					}
					continue
				case omitsPaths:
					var pe *ProtocolError
					if !errors.As(err, &pe) || pe.Code != 400 || pe.TransactionID == "" {
						t.Fatalf("frame without paths: got %v; want *ProtocolError 400", err)
					}
					continue
				case err != nil:
					t.Fatalf("parse: %v", err)
				}
				if v.bodyOctets >= 0 && len(m.Body) != v.bodyOctets {
					t.Fatalf("body %d octets, annotation says %d", len(m.Body), v.bodyOctets)
				}
				if v.bodyOctets < 0 && m.Body != nil {
					t.Fatalf("bodiless vector parsed with a %d-byte body", len(m.Body))
				}
				// Re-serialise: the RFC frames use canonical header spelling, so the bytes are identical.
				out := m.AppendTo(nil)
				if !bytes.Equal(out, v.wire) {
					t.Fatalf("re-serialised frame differs:\n got %q\nwant %q", out, v.wire)
				}
				m2, err := NewReader(bytes.NewReader(out), Limits{}).ReadMessage()
				if err != nil {
					t.Fatalf("reparse: %v", err)
				}
				if !messagesEqual(m, m2) {
					t.Fatalf("reparsed message differs: %+v vs %+v", m, m2)
				}
			}
		})
	}
}

func messagesEqual(a, b *Message) bool {
	if a.TransactionID != b.TransactionID || a.Method != b.Method || a.StatusCode != b.StatusCode ||
		a.Comment != b.Comment || a.Flag != b.Flag || !PathEqual(a.ToPath, b.ToPath) ||
		!PathEqual(a.FromPath, b.FromPath) || !bytes.Equal(a.Body, b.Body) || (a.Body == nil) != (b.Body == nil) ||
		len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		if a.Headers[i] != b.Headers[i] {
			return false
		}
	}
	return true
}

// TestRFCVectorStream reads every valid vector back to back from one stream, one byte at a time.
func TestRFCVectorStream(t *testing.T) {
	var all []byte
	var want int
	for _, v := range msrpVectors(t) {
		if strings.Contains(v.title, "end-line missing") || strings.Contains(v.title, "section 5.1: first chunk") ||
			strings.Contains(v.title, "section 5.1: second") {
			continue
		}
		all = append(all, v.wire...)
		want++
	}
	rd := NewReader(iotest.OneByteReader(bytes.NewReader(all)), Limits{})
	got := 0
	for {
		_, err := rd.ReadMessage()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", got, err)
		}
		got++
	}
	if got != want {
		t.Fatalf("read %d frames, want %d", got, want)
	}
}

package msrp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzReader checks that the reader never panics or over-reads, that no accepted body is over
// MaxChunkBytes, that reading the same bytes one at a time gives the same frames (the reader works with
// any segmentation of the stream), and that what it accepts re-serialises into a frame it parses to the
// same message.
func FuzzReader(f *testing.F) {
	for _, v := range msrpVectors(f) {
		f.Add(v.wire)
	}
	f.Add(crlf(sendHead + "a\n-------t9999$\nb\n-------t1234+\n"))
	f.Add(crlf(sendHead + "-------t1234$\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxHeaderBytes: 512, MaxChunkBytes: 1024}
		rd := NewReader(bytes.NewReader(data), lim)
		slow := NewReader(iotest.OneByteReader(bytes.NewReader(data)), lim)
		for i := 0; i < 100; i++ {
			m, err := rd.ReadMessage()
			sm, serr := slow.ReadMessage()
			var pe, spe *ProtocolError
			switch {
			case err == nil && (serr != nil || !messagesEqual(m, sm)):
				t.Fatalf("frame %d read whole: %+v; read a byte at a time: %+v, %v", i, m, sm, serr)
			case errors.As(err, &pe) && (!errors.As(serr, &spe) || spe.Code != pe.Code || spe.TransactionID != pe.TransactionID):
				t.Fatalf("frame %d read whole: %v; read a byte at a time: %v", i, err, serr)
			case err != nil && pe == nil && (serr == nil || errors.As(serr, &spe) || (err == io.EOF) != (serr == io.EOF)):
				t.Fatalf("frame %d read whole: %v; read a byte at a time: %+v, %v", i, err, sm, serr)
			}
			if err != nil {
				if pe != nil {
					if pe.Message == nil || pe.TransactionID == "" {
						t.Fatalf("ProtocolError without message or tid: %v", err)
					}
					continue
				}
				return
			}
			if len(m.Body) > lim.MaxChunkBytes {
				t.Fatalf("accepted a %d-byte body over MaxChunkBytes %d", len(m.Body), lim.MaxChunkBytes)
			}
			out := m.AppendTo(nil)
			m2, err := NewReader(bytes.NewReader(out), Limits{MaxHeaderBytes: 1 << 20, MaxChunkBytes: 1 << 20}).ReadMessage()
			if err != nil {
				t.Fatalf("re-serialised frame does not parse: %v\n%q", err, out)
			}
			if m.Method == "" {
				m.Flag = '$' // responses are always written with '$'
			}
			m2.TransactionID = m.TransactionID // the writer may pick another tid if the body contains it
			if !messagesEqual(m, m2) {
				t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
			}
		}
	})
}

// FuzzParseURI checks that accepted URIs format to a string that parses back to an Equal URI.
func FuzzParseURI(f *testing.F) {
	for _, v := range loadVectors(f) {
		for _, l := range strings.Split(string(v.wire), "\r\n") {
			if p, ok := strings.CutPrefix(l, "a=path:"); ok {
				for _, u := range strings.Fields(p) {
					f.Add(u)
				}
			}
			for _, pre := range []string{"To-Path: ", "From-Path: ", "Use-Path: "} {
				if p, ok := strings.CutPrefix(l, pre); ok {
					for _, u := range strings.Fields(p) {
						f.Add(u)
					}
				}
			}
		}
	}
	f.Add("msrps://u@[2001:db8::1]:2855/a/b+c=;tcp;x=y")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		if !u.Equal(u) {
			t.Fatalf("%q not equal to itself", s)
		}
		back, err := ParseURI(u.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", s, u.String(), err)
		}
		if back != u || !back.Equal(u) {
			t.Fatalf("round trip of %q: %+v vs %+v", s, back, u)
		}
	})
}

package msrp

import (
	"io"
	"strings"
	"testing"
	"time"
)

// loopReader returns its data cyclically, forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

var benchTo = []URI{{Host: "198.51.100.7", Port: 2855, SessionID: "kjhd37s2s20w2aAbCdEf", Transport: "tcp"}}
var benchFrom = []URI{{Host: "192.0.2.10", Port: 2855, SessionID: "jshA7weztasXyZ012345", Transport: "tcp"}}

func send100() *Message {
	return &Message{TransactionID: "a786hjs2x9q1", Method: MethodSend, ToPath: benchTo, FromPath: benchFrom,
		Headers: []Header{{HdrMessageID, "87652491abcdef"}, {HdrByteRange, "1-100/100"}, {HdrContentType, "text/plain"}},
		Body:    []byte(strings.Repeat("0123456789", 10)), Flag: '$'}
}

func BenchmarkParseSend100(b *testing.B) {
	frame := send100().AppendTo(nil)
	rd := NewReader(&loopReader{data: frame}, Limits{})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := rd.ReadMessage()
		if err != nil || len(m.Body) != 100 {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteSend100(b *testing.B) {
	m := send100()
	buf := m.AppendTo(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = m.AppendTo(buf[:0])
	}
}

func BenchmarkWriteMessageSend100(b *testing.B) {
	m := send100()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := WriteMessage(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}

func chunks64K() []*Message {
	body := []byte(strings.Repeat("abcdefghijklmnop", 4096)) // 64 KiB
	return chunkMessage(&Outgoing{ContentType: "text/plain", Body: body}, "mid64k", benchTo, benchFrom, 2048)
}

// BenchmarkParse64KChunked parses the 32 chunks of a 64 KiB message and reassembles them.
func BenchmarkParse64KChunked(b *testing.B) {
	var stream []byte
	for _, m := range chunks64K() {
		stream = m.AppendTo(stream)
	}
	rd := NewReader(&loopReader{data: stream}, Limits{})
	lim := reassemblyLimits{maxSize: 1 << 20, maxChunks: 1024, maxPartial: 16, expiry: time.Minute}
	now := time.Now()
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ra reassembler
		for k := 0; k < 32; k++ {
			m, err := rd.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			res := ra.add(m, now, lim)
			if k == 31 && (!res.complete || len(res.body) != 64<<10) {
				b.Fatalf("not complete: %+v", res)
			}
		}
	}
}

// BenchmarkWrite64KChunked chunks a 64 KiB message and writes every chunk.
func BenchmarkWrite64KChunked(b *testing.B) {
	body := []byte(strings.Repeat("abcdefghijklmnop", 4096))
	buf := make([]byte, 0, 80<<10)
	b.SetBytes(64 << 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = buf[:0]
		for _, m := range chunkMessage(&Outgoing{ContentType: "text/plain", Body: body}, "mid64k", benchTo, benchFrom, 2048) {
			buf = m.AppendTo(buf)
		}
	}
}

type nopHandler struct{}

func (nopHandler) HandleMessage(*Session, *Incoming) int { return 200 }
func (nopHandler) HandleReport(*Session, *Report)        {}
func (nopHandler) HandleClose(*Session, error)           {}

// BenchmarkEndpointSend100 measures pipelined 100-byte SENDs over loopback TCP, each confirmed by its
// 200 response (Failure-Report yes), through the whole stack: queue, writer, reader, routing, handler.
func BenchmarkEndpointSend100(b *testing.B) {
	ea, eb := NewEndpoint(Config{}), NewEndpoint(Config{})
	defer ea.Close()
	defer eb.Close()
	for _, e := range []*Endpoint{ea, eb} {
		if _, err := e.Listen("tcp", "127.0.0.1:0", false); err != nil {
			b.Fatal(err)
		}
	}
	a, s := ea.NewSession(nopHandler{}), eb.NewSession(nopHandler{})
	a.SetPeerPath(s.LocalPath())
	s.SetPeerPath(a.LocalPath())
	if err := a.Connect(b.Context()); err != nil {
		b.Fatal(err)
	}
	body := []byte(strings.Repeat("0123456789", 10))
	done := make(chan SendResult, 512)
	inflight := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for inflight >= 256 {
			if r := <-done; r.StatusCode != 200 {
				b.Fatal(r)
			}
			inflight--
		}
		if err := a.Send(&Outgoing{ContentType: "text/plain", Body: body}, func(r SendResult) { done <- r }); err != nil {
			b.Fatal(err)
		}
		inflight++
	}
	for ; inflight > 0; inflight-- {
		<-done
	}
}

package msrp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestChunkMessage(t *testing.T) {
	to := []URI{{Host: "b", Port: 1, SessionID: "s", Transport: "tcp"}}
	from := []URI{{Host: "a", Port: 1, SessionID: "r", Transport: "tcp"}}
	tests := []struct {
		name   string
		o      Outgoing
		size   int
		ranges []string
	}{
		{"bodiless", Outgoing{}, 2048, []string{""}},
		{"empty body", Outgoing{ContentType: "text/plain", Body: []byte{}}, 2048, []string{"1-0/0"}},
		{"one chunk", Outgoing{ContentType: "text/plain", Body: make([]byte, 2048)}, 2048, []string{"1-2048/2048"}},
		{"two chunks", Outgoing{ContentType: "text/plain", Body: make([]byte, 2049)}, 2048, []string{"1-2048/2049", "2049-2049/2049"}},
		{"interruptible", Outgoing{ContentType: "text/plain", Body: make([]byte, 5000)}, 4096, []string{"1-*/5000", "4097-5000/5000"}},
		// A single chunk is interruptible exactly when it is over 2048 octets, whatever the chunk size.
		{"one chunk of 2048, larger size", Outgoing{ContentType: "text/plain", Body: make([]byte, 2048)}, 4096, []string{"1-2048/2048"}},
		{"one chunk of 2049", Outgoing{ContentType: "text/plain", Body: make([]byte, 2049)}, 4096, []string{"1-*/2049"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Headers = []Header{{HdrContentDisp, "inline"}}
			tt.o.SuccessReport = true
			tt.o.FailureReport = "partial"
			msgs := chunkMessage(&tt.o, "mid", to, from, tt.size)
			if len(msgs) != len(tt.ranges) {
				t.Fatalf("%d chunks, want %d", len(msgs), len(tt.ranges))
			}
			var all []byte
			for i, m := range msgs {
				if got := m.Header(HdrByteRange); got != tt.ranges[i] {
					t.Errorf("chunk %d Byte-Range %q, want %q", i, got, tt.ranges[i])
				}
				wantFlag := byte('+')
				if i == len(msgs)-1 {
					wantFlag = '$'
				}
				if m.Flag != wantFlag || m.MessageID() != "mid" || m.Header(HdrSuccessReport) != "yes" || m.FailureReport() != "partial" {
					t.Errorf("chunk %d: %+v", i, m)
				}
				if tt.o.Body == nil {
					if m.Body != nil || m.ContentType() != "" || m.Header(HdrContentDisp) != "" {
						t.Errorf("bodiless SEND with MIME headers or body: %+v", m)
					}
				} else if m.Headers[len(m.Headers)-1].Name != HdrContentType || m.Header(HdrContentDisp) != "inline" {
					t.Errorf("chunk %d header order %+v", i, m.Headers)
				}
				all = append(all, m.Body...)
			}
			if !bytes.Equal(all, tt.o.Body) {
				t.Fatal("chunks do not add up to the body")
			}
		})
	}
}

// chunk builds a SEND chunk for reassembler tests.
func chunk(mid, br, body string, flag byte) *Message {
	m := &Message{Method: MethodSend, Headers: []Header{{HdrMessageID, mid}}, Body: []byte(body), Flag: flag}
	if br != "" {
		m.Headers = append(m.Headers, Header{HdrByteRange, br})
	}
	m.Headers = append(m.Headers, Header{HdrContentType, "text/plain"})
	return m
}

func TestReassembler(t *testing.T) {
	lim := reassemblyLimits{maxSize: 20, maxChunks: 4, maxPartial: 2, expiry: time.Minute}
	type step struct {
		m        *Message
		complete string // expected body when complete
		refuse   int
		aborted  bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"no Byte-Range", []step{{m: chunk("a", "", "whole", '$'), complete: "whole"}}},
		{"single chunk", []step{{m: chunk("a", "1-5/5", "whole", '$'), complete: "whole"}}},
		{"RFC inconsistent counts", []step{{m: chunk("a", "1-25/25", "Hey Bob", '$'), complete: "Hey Bob"}}},
		{"in order", []step{{m: chunk("a", "1-3/6", "abc", '+')}, {m: chunk("a", "4-6/6", "def", '$'), complete: "abcdef"}}},
		{"reversed", []step{{m: chunk("a", "4-6/6", "def", '$')}, {m: chunk("a", "1-3/6", "abc", '+'), complete: "abcdef"}}},
		{"star ranges", []step{{m: chunk("a", "1-*/*", "abc", '+')}, {m: chunk("a", "4-*/*", "de", '$'), complete: "abcde"}}},
		{"interrupted chunk", []step{{m: chunk("a", "1-6/6", "ab", '+')}, {m: chunk("a", "3-6/6", "cdef", '$'), complete: "abcdef"}}},
		{"RFC 11.4 totals", []step{{m: chunk("a", "1-4/9", "ABCD", '+')}, {m: chunk("a", "5-9/9", "1234", '$'), complete: "ABCD1234"}}},
		{"overlap: last wins", []step{{m: chunk("a", "1-4/6", "abcd", '+')}, {m: chunk("a", "3-6/6", "XYef", '$'), complete: "abXYef"}}},
		{"gap then fill", []step{{m: chunk("a", "1-2/6", "ab", '+')}, {m: chunk("a", "5-6/6", "ef", '$')}, {m: chunk("a", "3-4/6", "cd", '+'), complete: "abcdef"}}},
		{"abort", []step{{m: chunk("a", "1-3/6", "abc", '+')}, {m: chunk("a", "4-6/6", "", '#'), aborted: true}, {m: chunk("a", "4-6/6", "def", '$')}}},
		{"abort first", []step{{m: chunk("a", "1-3/6", "abc", '#'), aborted: true}}},
		{"total over max", []step{{m: chunk("a", "1-3/999", "abc", '+'), refuse: 413}, {m: chunk("a", "4-6/999", "def", '+'), refuse: 413}}},
		{"total one over max", []step{{m: chunk("a", "1-3/21", "abc", '+'), refuse: 413}}},
		{"total at max", []step{{m: chunk("a", "1-3/20", "abc", '+')}}},
		{"huge claimed total", []step{{m: chunk("a", "1-3/999999999999999", "abc", '+'), refuse: 413}}},
		{"accumulated over max", []step{{m: chunk("a", "1-*/*", strings.Repeat("x", 15), '+')}, {m: chunk("a", "16-*/*", "123456", '+'), refuse: 413}}},
		{"far start", []step{{m: chunk("a", "1000000-1000001/*", "xy", '+'), refuse: 413}}},
		{"whole over max", []step{{m: chunk("a", "", strings.Repeat("x", 21), '$'), refuse: 413}}},
		{"too many chunks", []step{{m: chunk("a", "1-1/*", "a", '+')}, {m: chunk("a", "2-2/*", "b", '+')}, {m: chunk("a", "3-3/*", "c", '+')}, {m: chunk("a", "4-4/*", "d", '+')}, {m: chunk("a", "5-5/*", "e", '$'), refuse: 413}}},
		{"too many partials", []step{{m: chunk("a", "1-1/2", "a", '+')}, {m: chunk("b", "1-1/2", "a", '+')}, {m: chunk("c", "1-1/2", "a", '+'), refuse: 413}, {m: chunk("a", "2-2/2", "b", '$'), complete: "ab"}, {m: chunk("d", "1-1/2", "a", '+')}}},
		// A message refused for want of a slot is refused as a whole, as every 413 (RFC 4975 §10.5): its later
		// chunks too, once a slot is free, and they take none.
		{"refused for want of a slot", []step{{m: chunk("a", "1-1/2", "a", '+')}, {m: chunk("b", "1-1/2", "a", '+')}, {m: chunk("c", "1-1/3", "a", '+'), refuse: 413}, {m: chunk("a", "2-2/2", "b", '$'), complete: "ab"}, {m: chunk("c", "2-2/3", "b", '+'), refuse: 413}, {m: chunk("d", "1-1/2", "a", '+')}, {m: chunk("c", "3-3/3", "c", '$'), refuse: 413}, {m: chunk("e", "1-1/2", "a", '+'), refuse: 413}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ra reassembler
			now := time.Now()
			for i, st := range tt.steps {
				res := ra.add(st.m, now, lim)
				if res.refuse != st.refuse || res.aborted != st.aborted || res.complete != (st.complete != "") {
					t.Fatalf("step %d: %+v", i, res)
				}
				if res.complete && string(res.body) != st.complete {
					t.Fatalf("step %d: body %q, want %q", i, res.body, st.complete)
				}
			}
		})
	}
}

func TestReassemblerExpiry(t *testing.T) {
	lim := reassemblyLimits{maxSize: 100, maxChunks: 10, maxPartial: 10, expiry: time.Minute}
	var ra reassembler
	now := time.Now()
	for i := 0; i < 5; i++ {
		ra.add(chunk(fmt.Sprint(i), "1-1/2", "a", '+'), now, lim)
	}
	if n := ra.expire(now.Add(30 * time.Second)); n != 0 {
		t.Fatalf("expired %d fresh partials", n)
	}
	if n := ra.expire(now.Add(2 * time.Minute)); n != 5 || len(ra.partials) != 0 {
		t.Fatalf("expired %d, %d left", n, len(ra.partials))
	}
	// The missing last chunk of an expired message never completes it.
	if res := ra.add(chunk("0", "2-2/2", "b", '$'), now.Add(3*time.Minute), lim); res.complete {
		t.Fatal("expired message completed")
	}
}

// Every SEND says what failure reports it asks for, "yes" included, bodiless ones too (SPEC §2, §5).
func TestChunkMessageFailureReport(t *testing.T) {
	to := []URI{{Host: "b", Port: 1, SessionID: "s", Transport: "tcp"}}
	from := []URI{{Host: "a", Port: 1, SessionID: "r", Transport: "tcp"}}
	for _, c := range []struct {
		o    Outgoing
		want string
	}{
		{Outgoing{}, "yes"},
		{Outgoing{ContentType: "text/plain", Body: []byte("hi")}, "yes"},
		{Outgoing{ContentType: "text/plain", Body: []byte("hi"), FailureReport: "partial"}, "partial"},
		{Outgoing{ContentType: "text/plain", Body: []byte("hi"), FailureReport: "No"}, "no"},
	} {
		for _, m := range chunkMessage(&c.o, "m1", to, from, 0) {
			if got := m.Header(HdrFailureReport); got != c.want {
				t.Errorf("%+v: Failure-Report %q, want %q", c.o, got, c.want)
			}
		}
	}
}

package main

import (
	"errors"
	"testing"
)

func TestBodyRoundTrip(t *testing.T) {
	in := stamp{flow: msrpToMsg, session: 7, seq: 123456, sentNs: 987654321}
	out, err := parseBody([]byte(in.format()))
	if err != nil || out != in {
		t.Fatalf("parseBody(format(%+v)) = %+v, %v", in, out, err)
	}
	for _, b := range []string{"", "hello", "msrpgw-load x 1 2 3", "msrpgw-load msg2msrp -1 2 3", "msrpgw-load msg2msrp 1 2",
		"Message not delivered (408 Request Timeout): msrpgw-load msg2msrp 1 2 3"} {
		if _, err := parseBody([]byte(b)); !errors.Is(err, errNotOurs) {
			t.Errorf("parseBody(%q) = %v, want errNotOurs", b, err)
		}
	}
}

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(stamp{flow: msgToMSRP, session: 1, seq: 2, sentNs: 3}.format()))
	f.Add([]byte("msrpgw-load warmup 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseBody(b)
		if err != nil {
			return
		}
		again, err := parseBody([]byte(s.format()))
		if err != nil || again != s {
			t.Fatalf("%q parsed as %+v, which formats back to %+v, %v", b, s, again, err)
		}
	})
}

// TestCounting drives flowStats directly: duplicates, reorders and losses by the definitions in the report.
func TestCounting(t *testing.T) {
	f := newFlowStats(2)
	for range 6 {
		f.sent(0)
	}
	for _, seq := range []int64{0, 2, 1, 2, 4} { // 1 late (reordered), 2 twice, 3 and 5 never
		f.received(stamp{flow: msgToMSRP, session: 0, seq: seq}, 1)
	}
	f.received(stamp{flow: msgToMSRP, session: 9, seq: 0}, 1) // no such session
	r := f.report()
	if r.Delivered != 4 || r.Duplicated != 1 || r.Reordered != 1 || r.Lost != 2 || r.Foreign != 1 {
		t.Errorf("%+v", r)
	}
}

func TestSummarise(t *testing.T) {
	var ns []int64
	for i := int64(1); i <= 100; i++ {
		ns = append(ns, i*1e6)
	}
	l := summarise(ns)
	if l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 || l.N != 100 {
		t.Errorf("%+v", l)
	}
}

func TestParseGoroutines(t *testing.T) {
	body := []byte("# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 42\ngo_threads 9\n")
	if n, err := parseGoroutines(body); err != nil || n != 42 {
		t.Fatalf("parseGoroutines: %d, %v; want 42", n, err)
	}
	if _, err := parseGoroutines([]byte("go_threads 9\n")); err == nil {
		t.Fatal("no go_goroutines sample, and no error")
	}
	if _, err := parseGoroutines([]byte("go_goroutines many\n")); err == nil {
		t.Fatal("a sample that is no number, and no error")
	}
}

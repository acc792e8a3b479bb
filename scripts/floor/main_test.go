//go:build linux

package main

import (
	"net"
	"testing"
	"time"
)

// The Go relay passes every datagram through and, asked to, answers each one; measure counts and times
// them all. Loopback only, ephemeral ports.
func TestRelayAndMeasure(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp int
		raw  bool
	}{{"forward", 0, false}, {"answers", 80, false}, {"answers, raw calls", 80, true}} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go relay(pc, ln, tc.resp, 300, tc.raw)

			const rate, n = 2000, 200
			r, err := measure(pc.LocalAddr().String(), ln.Addr().String(), rate, n*time.Second/rate, 64, tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			// The kernel may start timestamping a few bytes late, never more than the first datagrams.
			if len(r.oneWay) < n-5 || len(r.oneWay) > n {
				t.Errorf("%d one-way latencies for %d datagrams", len(r.oneWay), n)
			}
			want := 0
			if tc.resp > 0 {
				want = n
			}
			if len(r.roundTrip) != want {
				t.Errorf("%d answers, want %d", len(r.roundTrip), want)
			}
			// Not a speed check: a latency that is negative or over a minute means the clocks are mixed up.
			for _, l := range append(r.oneWay, r.roundTrip...) {
				if l <= 0 || l > int64(time.Minute) {
					t.Fatalf("latency %v", time.Duration(l))
				}
			}
		})
	}
}

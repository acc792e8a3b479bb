//go:build linux

// Command floor measures what this machine adds to a gateway's latency: the time from a UDP datagram's
// sendto to the kernel's arrival timestamp of the same bytes on a TCP connection, through a relay that does
// nothing else (relay/relay.c, or this program with -relay), paced open loop like msrpgw-load. It is the same
// measurement as msrpgw-load's "wire latency" of MESSAGE→MSRP, without a gateway (docs/PERFORMANCE.md).
//
//	cc -O2 -o /tmp/relay scripts/floor/relay/relay.c
//	/tmp/relay 17000 17001 & go run ./scripts/floor -rate 5000 -duration 8s
//	go run ./scripts/floor -relay & go run ./scripts/floor -rate 5000 -duration 8s
//
// The datagrams are -size bytes, each starting with its send time (Unix ns, little endian); the relay
// must pass them through whole and in order. Linux only (kernel receive timestamps, internal/rawio).
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"time"

	"github.com/msrpgw/msrpgw/internal/rawio"
)

func main() {
	udpAddr := flag.String("udp", "127.0.0.1:17000", "the relay's UDP address")
	tcpAddr := flag.String("tcp", "127.0.0.1:17001", "the relay's TCP address")
	relay := flag.Bool("relay", false, "be the relay instead of measuring one")
	rate := flag.Float64("rate", 5000, "datagrams per second")
	duration := flag.Duration("duration", 8*time.Second, "how long to send")
	size := flag.Int("size", 400, "datagram size in bytes (≥ 8)")
	flag.Parse()
	if *relay {
		log.Fatal(runRelay(*udpAddr, *tcpAddr))
	}
	if *size < 8 || *rate <= 0 {
		log.Fatal("-size must be at least 8 and -rate positive")
	}
	lat, err := measure(*udpAddr, *tcpAddr, *rate, *duration, *size)
	if err != nil {
		log.Fatal(err)
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)]) / 1e3 }
	fmt.Printf("%d datagrams at %g/s: sendto → kernel arrival p50 %.0f p90 %.0f p99 %.0f max %.0f µs\n",
		len(lat), *rate, q(0.50), q(0.90), q(0.99), float64(lat[len(lat)-1])/1e3)
}

// measure sends n datagrams on schedule and returns each one's latency in ns. It reads the relay's TCP
// connection the way msrpgw-load's MSRP side does (internal/rawio receive timestamps).
func measure(udpAddr, tcpAddr string, rate float64, duration time.Duration, size int) ([]int64, error) {
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		return nil, err
	}
	tc = rawio.WrapConn(tc)
	defer tc.Close()
	if !rawio.EnableRxTimestamps(tc) {
		return nil, errors.New("no kernel receive timestamps on this system")
	}
	uc, err := net.Dial("udp", udpAddr)
	if err != nil {
		return nil, err
	}
	defer uc.Close()

	n := int(rate * duration.Seconds())
	lat := make([]int64, 0, n)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		have := 0
		for len(lat) < n {
			m, err := tc.Read(buf[have:])
			if err != nil {
				done <- err
				return
			}
			rx := rawio.RxTime(tc)
			have += m
			for have >= size {
				if !rx.IsZero() { // the first bytes may come before the kernel starts stamping
					lat = append(lat, rx.UnixNano()-int64(binary.LittleEndian.Uint64(buf)))
				}
				copy(buf, buf[size:have])
				have -= size
			}
		}
		done <- nil
	}()
	msg := make([]byte, size)
	t0 := time.Now()
	for i := range n {
		if d := time.Until(t0.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, err := uc.Write(msg); err != nil {
			return nil, err
		}
	}
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-time.After(2 * time.Second):
		tc.Close() // the reader returns with an error, and lat is complete
		<-done
		fmt.Fprintf(os.Stderr, "floor: %d of %d datagrams came back (UDP drops at the relay?)\n", len(lat), n)
	}
	if len(lat) == 0 {
		return nil, errors.New("no datagram came back with a kernel timestamp")
	}
	return lat, nil
}

// runRelay is relay.c in Go: one goroutine, the net package's calls. It returns only with an error.
func runRelay(udpAddr, tcpAddr string) error {
	pc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "relay: waiting on", tcpAddr)
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	b := make([]byte, 65536)
	for {
		n, _, err := pc.ReadFrom(b)
		if err != nil {
			return err
		}
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
	}
}

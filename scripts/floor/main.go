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
//
// With -resp N the relay also does the least a gateway in `wait` reply mode does: this program answers each
// datagram it receives on TCP with N bytes (the MSRP 200), the relay reads them and sends an -ans byte
// datagram back to the sender (the SIP 200), which this program counts and times (round trip, as the
// sender sees it). With -pid it reports the relay's CPU per message (utime+stime from /proc/PID/stat):
//
//	/tmp/relay 17000 17001 80 300 & go run ./scripts/floor -resp 80 -ans 300 -pid $!
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/msrpgw/msrpgw/internal/rawio"
)

func main() {
	udpAddr := flag.String("udp", "127.0.0.1:17000", "the relay's UDP address")
	tcpAddr := flag.String("tcp", "127.0.0.1:17001", "the relay's TCP address")
	relay := flag.Bool("relay", false, "be the relay instead of measuring one")
	block := flag.Bool("block", false, "with -relay: blocking system calls on one locked thread instead of the network poller")
	raw := flag.Bool("raw", false, "with -relay: the sockets' calls through internal/rawio, as the gateway makes them")
	rate := flag.Float64("rate", 5000, "datagrams per second")
	duration := flag.Duration("duration", 8*time.Second, "how long to send")
	size := flag.Int("size", 400, "datagram size in bytes (≥ 8)")
	resp := flag.Int("resp", 0, "answer each datagram on TCP with this many bytes and expect a UDP answer (0: no answers)")
	ans := flag.Int("ans", 300, "with -resp: size of the relay's UDP answer in bytes (≥ 8)")
	pid := flag.Int("pid", 0, "the relay's process ID: report its CPU per message")
	flag.Parse()
	if *relay && *block {
		log.Fatal(runBlockingRelay(*udpAddr, *tcpAddr, *resp, *ans))
	}
	if *relay {
		log.Fatal(runRelay(*udpAddr, *tcpAddr, *resp, *ans, *raw))
	}
	if *size < 8 || *rate <= 0 || *resp < 0 || *ans < 8 {
		log.Fatal("-size and -ans must be at least 8, -rate positive and -resp not negative")
	}
	cpu0 := procCPU(*pid)
	r, err := measure(*udpAddr, *tcpAddr, *rate, *duration, *size, *resp)
	if err != nil {
		log.Fatal(err)
	}
	report("sendto → kernel arrival", r.oneWay, *rate)
	if *resp > 0 {
		report("round trip (sendto → answer read)", r.roundTrip, *rate)
	}
	if *pid > 0 {
		fmt.Printf("relay CPU: %.1f µs per datagram\n", float64(procCPU(*pid)-cpu0)/1e3/float64(len(r.oneWay)))
	}
}

func report(what string, lat []int64, rate float64) {
	if len(lat) == 0 {
		fmt.Printf("%s: none\n", what)
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)]) / 1e3 }
	fmt.Printf("%d datagrams at %g/s, %s: p50 %.0f p90 %.0f p99 %.0f max %.0f µs\n",
		len(lat), rate, what, q(0.50), q(0.90), q(0.99), float64(lat[len(lat)-1])/1e3)
}

// procCPU is a process's utime+stime in ns (0 for pid 0 or when unreadable).
func procCPU(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	// Fields are counted after the command name's closing parenthesis: utime and stime are the 12th and
	// 13th there, in USER_HZ (100) ticks.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * 1e7
}

// result is what measure saw: each datagram's one-way latency to the TCP side and, with answers, each
// answer's round trip, in ns.
type result struct{ oneWay, roundTrip []int64 }

// measure sends n datagrams on schedule and times them. It reads the relay's TCP connection the way
// msrpgw-load's MSRP side does (internal/rawio receive timestamps) and, with resp > 0, answers each
// datagram there with resp bytes and reads the relay's UDP answers.
func measure(udpAddr, tcpAddr string, rate float64, duration time.Duration, size, resp int) (result, error) {
	var r result
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		return r, err
	}
	tc = rawio.WrapConn(tc)
	defer tc.Close()
	if !rawio.EnableRxTimestamps(tc) {
		return r, errors.New("no kernel receive timestamps on this system")
	}
	uc, err := net.Dial("udp", udpAddr)
	if err != nil {
		return r, err
	}
	defer uc.Close()

	n := int(rate * duration.Seconds())
	r.oneWay = make([]int64, 0, n)
	done := make(chan error, 1)
	go func() {
		buf, answer := make([]byte, 1<<20), make([]byte, resp)
		have, seen := 0, 0
		for seen < n {
			m, err := tc.Read(buf[have:])
			if err != nil {
				done <- err
				return
			}
			rx := rawio.RxTime(tc)
			have += m
			for have >= size {
				seen++
				if !rx.IsZero() { // the first bytes may come before the kernel starts stamping
					r.oneWay = append(r.oneWay, rx.UnixNano()-int64(binary.LittleEndian.Uint64(buf)))
				}
				copy(buf, buf[size:have])
				have -= size
				if resp > 0 {
					if _, err := tc.Write(answer); err != nil {
						done <- err
						return
					}
				}
			}
		}
		done <- nil
	}()
	answered := make(chan struct{})
	if resp > 0 {
		r.roundTrip = make([]int64, 0, n)
		go func() {
			defer close(answered)
			b := make([]byte, 65536)
			for len(r.roundTrip) < n {
				m, err := uc.Read(b)
				if err != nil {
					return
				}
				if m >= 8 {
					r.roundTrip = append(r.roundTrip, time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(b)))
				}
			}
		}()
	} else {
		close(answered)
	}
	msg := make([]byte, size)
	t0 := time.Now()
	for i := range n {
		if d := time.Until(t0.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		binary.LittleEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if _, err := uc.Write(msg); err != nil {
			return r, err
		}
	}
	timeout := time.After(2 * time.Second)
	select {
	case err := <-done:
		if err != nil {
			return r, err
		}
	case <-timeout:
		tc.Close() // the reader returns with an error, and r.oneWay is complete
		<-done
		fmt.Fprintf(os.Stderr, "floor: %d of %d datagrams came back (UDP drops at the relay?)\n", len(r.oneWay), n)
	}
	select {
	case <-answered:
	case <-timeout:
		uc.Close()
		<-answered
		fmt.Fprintf(os.Stderr, "floor: %d of %d answers came back\n", len(r.roundTrip), n)
	}
	if len(r.oneWay) == 0 {
		return r, errors.New("no datagram came back with a kernel timestamp")
	}
	return r, nil
}

// runRelay is relay.c in Go: one goroutine, the net package's calls or, with raw, internal/rawio's. It
// returns only with an error.
func runRelay(udpAddr, tcpAddr string, resp, ans int, raw bool) error {
	pc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "relay: waiting on", tcpAddr)
	return relay(pc, ln, resp, ans, raw)
}

// relay accepts one connection on ln and relays pc's datagrams to it (and, with resp > 0, the answers back).
func relay(pc net.PacketConn, ln net.Listener, resp, ans int, raw bool) error {
	if raw {
		pc = rawio.WrapPacketConn(pc)
	}
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	if raw {
		c = rawio.WrapConn(c)
	}
	b, r, out := make([]byte, 65536), make([]byte, resp), make([]byte, ans)
	for {
		n, src, err := pc.ReadFrom(b)
		if err != nil {
			return err
		}
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		if resp == 0 {
			continue
		}
		if _, err := io.ReadFull(c, r); err != nil {
			return err
		}
		copy(out, b[:min(n, 8)])
		if _, err := pc.WriteTo(out, src); err != nil {
			return err
		}
	}
}

// runBlockingRelay is relay.c in Go without the network poller: blocking sockets, the syscall package's
// calls (which tell the scheduler they may block), one goroutine locked to its thread.
func runBlockingRelay(udpAddr, tcpAddr string, resp, ans int) error {
	runtime.LockOSThread()
	sa := func(addr string) (*syscall.SockaddrInet4, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().Is4() {
			return nil, fmt.Errorf("%q: not an IPv4 address:port", addr)
		}
		return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
	}
	ua, err := sa(udpAddr)
	if err != nil {
		return err
	}
	ta, err := sa(tcpAddr)
	if err != nil {
		return err
	}
	u, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	if err := syscall.Bind(u, ua); err != nil {
		return err
	}
	l, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	_ = syscall.SetsockoptInt(l, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(l, ta); err != nil {
		return err
	}
	if err := syscall.Listen(l, 1); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "relay: waiting on", tcpAddr, "(blocking)")
	c, _, err := syscall.Accept(l)
	if err != nil {
		return err
	}
	_ = syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	b, r, out := make([]byte, 65536), make([]byte, resp), make([]byte, ans)
	for {
		n, src, err := syscall.Recvfrom(u, b, 0)
		if err != nil {
			return err
		}
		if _, err := syscall.Write(c, b[:n]); err != nil {
			return err
		}
		if resp == 0 {
			continue
		}
		for got := 0; got < resp; {
			m, err := syscall.Read(c, r[got:])
			if err != nil || m == 0 {
				return fmt.Errorf("read answer: %v (%d bytes)", err, m)
			}
			got += m
		}
		copy(out, b[:min(n, 8)])
		if err := syscall.Sendto(u, out, 0, src); err != nil {
			return err
		}
	}
}

package gateway

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msrpgw/msrpgw/internal/testpeer"
)

// A real page-mode peer: sipp sends MESSAGEs through the gateway to an MSRP client, in order.
func TestSippPageModeUser(t *testing.T) {
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatal("sipp is required (Debian sip-tester; `make test` installs it)")
	}
	h := newHarness(t, nil)
	bob := testpeer.NewClient(t, "bob")

	const n = 5
	port := freeUDPPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// sipp writes its error log into the working directory unless told where: keep it out of the tree.
	errLog := filepath.Join(t.TempDir(), "sipp_errors.log")
	cmd := exec.CommandContext(ctx, sipp,
		"-sf", "testdata/sipp/message.xml",
		"-key", "ruri", bob.URI,
		"-i", "127.0.0.1", "-p", fmt.Sprint(port),
		"-m", fmt.Sprint(n), "-l", "1", "-r", "50",
		"-timeout", "30s", "-nostdin", "-trace_err", "-error_file", errLog,
		h.udp())
	out, err := cmd.CombinedOutput()
	if err != nil {
		errs, _ := os.ReadFile(errLog)
		t.Fatalf("sipp failed: %v\n%s\nsipp's error log:\n%s", err, out, errs)
	}
	cs := bob.WaitInvite()
	for i := 1; i <= n; i++ {
		m := cs.Recv()
		if got, want := strings.TrimRight(string(m.Body), "\r\n"), fmt.Sprintf("sipp message %d", i); got != want {
			t.Fatalf("SEND %d: %q, want %q", i, got, want)
		}
	}
}

// freeSharedPort returns a port free on 127.0.0.1 for both UDP and TCP, for a gateway listening on one port
// for both: a port free for UDP may be a TCP connection's local port.
func freeSharedPort(t testing.TB) int {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}

func freeUDPPort(t testing.TB) int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

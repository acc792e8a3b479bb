package gateway

import (
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// setReadBuffer tells a buffer the kernel capped (Linux: at net.core.rmem_max) from one it granted, so that
// the gateway can warn at start instead of dropping MESSAGEs under load without a word.
func TestSetReadBufferCapped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the receive buffer's size is read on Linux only")
	}
	raw, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *net.UDPConn {
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { uc.Close() })
		return uc
	}
	if got, capped := setReadBuffer(open(), 2*rmemMax); !capped || got != rmemMax {
		t.Fatalf("asked twice rmem_max (%d): got %d, capped %v; want %d, capped", 2*rmemMax, got, capped, rmemMax)
	}
	want := min(rmemMax, 64<<10)
	if got, capped := setReadBuffer(open(), want); capped || got < want {
		t.Fatalf("asked %d (rmem_max %d): got %d, capped %v; want it granted", want, rmemMax, got, capped)
	}
}

package gateway

import (
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
)

// maxUDPDatagram is the largest UDP payload there is (a 16-bit length field).
const maxUDPDatagram = 65535

// ConfigureSIPStack sets sipgo's process-wide limits for cfg. Call it once, before any gateway starts (the
// daemon does it in main, tests in TestMain). sipgo drops, unanswered, any SIP message above its parse limit,
// so the limit is raised to at least 4× the largest accepted message: an oversize MESSAGE is then read and
// refused with 413, not lost (SPEC §4). For the same reason its read buffer holds any UDP datagram: sipgo
// reads a datagram into one buffer (32 KiB by default), and a larger one arrives truncated and is dropped as
// unparsable. The buffer is also each SIP TCP/TLS connection's read buffer: 64 KiB per connection.
func ConfigureSIPStack(cfg *config.Config) {
	want := 4 * int(cfg.Gateway.MaxMessageSize)
	if want < 65535 {
		want = 65535
	}
	if sip.ParseMaxMessageLength < want {
		sip.ParseMaxMessageLength = want
	}
	sip.TransportBufferReadSize = maxUDPDatagram
}

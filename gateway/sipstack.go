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
// unparsable. The buffer is also each SIP TCP/TLS connection's read buffer: 64 KiB per connection. And sipgo
// sends UDP answers of any size.
func ConfigureSIPStack(cfg *config.Config) {
	want := 4 * int(cfg.Gateway.MaxMessageSize)
	if want < 65535 {
		want = 65535
	}
	if sip.ParseMaxMessageLength < want {
		sip.ParseMaxMessageLength = want
	}
	sip.TransportBufferReadSize = maxUDPDatagram
	// sipgo refuses to send any UDP message over UDPMTUSize-200 (1300) bytes. For requests the gateway makes
	// that choice itself (a generated request over 1300 bytes goes over TCP: offUDPIfLarge), but responses go
	// back over the request's transport whatever their size (RFC 3261 §18.2.2): a 200 to an INVITE that came
	// through a few proxies is longer than that, and was never sent.
	sip.UDPMTUSize = maxUDPDatagram + 200
}

// newSIPParser is sipgo's parser, except that a From or To header it cannot parse is kept as it came, as a
// generic header, instead of failing the whole message. sipgo drops such a datagram unanswered, and on a
// stream closes the connection with every other request on it; SPEC §8 wants 400. The request then reaches
// the handlers with From() or To() nil, and they answer 400 (addressProblem). Headers that parse are parsed
// as sipgo always does.
func newSIPParser() *sip.Parser {
	parsers := make(map[string]sip.HeaderParser, len(sip.DefaultHeadersParser()))
	for name, p := range sip.DefaultHeadersParser() {
		parsers[name] = p
	}
	for _, h := range []struct{ name, compact, canonical string }{{"from", "f", "From"}, {"to", "t", "To"}} {
		keep := keepUnparsed(h.canonical, parsers[h.name])
		parsers[h.name], parsers[h.compact] = keep, keep
	}
	return sip.NewParser(sip.WithHeadersParsers(parsers))
}

// keepUnparsed is parse, falling back to a generic header named name (the full form, so that GetHeader(name)
// finds it whichever form came) with the header's text when parse fails.
func keepUnparsed(name string, parse sip.HeaderParser) sip.HeaderParser {
	return func(lowerName []byte, text string) (sip.Header, error) {
		h, err := parse(lowerName, text)
		if err != nil {
			return sip.NewHeader(name, text), nil
		}
		return h, nil
	}
}

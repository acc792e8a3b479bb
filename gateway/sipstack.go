package gateway

import (
	"github.com/emiago/sipgo/sip"

	"github.com/msrpgw/msrpgw/config"
)

// ConfigureSIPStack sets sipgo's process-wide limits for cfg. Call it once, before any gateway starts (the
// daemon does it in main, tests in TestMain). sipgo drops, unanswered, any SIP message above its parse limit,
// so the limit is raised to at least 4× the largest accepted message: an oversize MESSAGE is then read and
// refused with 413, not lost (SPEC §4).
func ConfigureSIPStack(cfg *config.Config) {
	want := 4 * int(cfg.Gateway.MaxMessageSize)
	if want < 65535 {
		want = 65535
	}
	if sip.ParseMaxMessageLength < want {
		sip.ParseMaxMessageLength = want
	}
}

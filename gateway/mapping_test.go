package gateway

import (
	"errors"
	"fmt"
	"testing"

	"github.com/msrpgw/msrpgw/msrp"
)

// SPEC §5: a SEND lost with its connection fails 480, also when the connection was closed because its write
// queue stayed full (the msrp package's cause then wraps ErrQueueFull inside ErrConnLost); a SEND that alone
// did not fit a queue of a connection that goes on is the 503 of a full queue.
func TestSendOutcomeOfLocalFailures(t *testing.T) {
	cases := []struct {
		err  error
		want outcome
	}{
		{fmt.Errorf("%w: %w", msrp.ErrConnLost, msrp.ErrQueueFull), outcomeMSRPConnFailed},
		{fmt.Errorf("%w: %w", msrp.ErrConnLost, errors.New("EOF")), outcomeMSRPConnFailed},
		{fmt.Errorf("%w (3 frames queued)", msrp.ErrQueueFull), outcomeQueueFull},
		{errors.New("something else"), outcomeMSRPConnFailed},
	}
	for _, c := range cases {
		if got := sendOutcome(0, c.err); got != c.want {
			t.Errorf("sendOutcome(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

package gateway

import (
	"errors"
	"fmt"

	"github.com/msrpgw/msrpgw/msrp"
)

// This file is the one place for the status mappings of SPEC §5, one table per direction.

// outcome is the fate of one message, in SIP terms: the final response the page-mode side sees for it
// (MESSAGE→MSRP), or the final response the page-mode side gave (MSRP→MESSAGE).
type outcome struct {
	Code   int
	Reason string
}

func (o outcome) delivered() bool { return o.Code >= 200 && o.Code < 300 }

func (o outcome) String() string { return fmt.Sprintf("%d %s", o.Code, o.Reason) }

// The gateway's own outcomes, used when no SIP response exists to quote (SPEC §5: never empty).
var (
	outcomeSetupTimeout   = outcome{408, "Request Timeout"}
	outcomeMSRPConnFailed = outcome{480, "MSRP connection failed"}
	outcomeSessionEnded   = outcome{480, "Session ended"}
	outcomeDraining       = outcome{503, "Service Unavailable"}
	outcomeQueueFull      = outcome{503, "MSRP write queue full"}
	// The message, as it would be sent (CPIM included), is larger than the peer's SDP a=max-size (RFC 4975
	// §8.6): it is not sent, and fails as the 413 the peer would answer (SPEC §5: SEND answered 413 → 413).
	outcomeOverPeerMaxSize = outcome{413, "Message too large for the peer"}
	outcomeNoReport        = outcome{408, "No delivery report"} // a relay took the SEND, no REPORT came (deadline.go)
	// A generated request could not be sent, or the connection carrying its transaction closed before its final
	// response: a transport failure, treated as 503 (RFC 3261 §8.1.3.1; startSIP). For an INVITE it is that
	// INVITE's final response (SPEC §5: any other 5xx, the same code and reason).
	outcomeTransportFailed = outcome{503, "Service Unavailable"}
)

// MESSAGE → MSRP: the final response to a MESSAGE in `wait` mode, from what happened on the MSRP side.

// inviteOutcome maps the final non-2xx response to our INVITE (SPEC §5 table 1, INVITE rows).
func inviteOutcome(code int, reason string) outcome {
	switch {
	case code >= 300 && code < 400:
		return outcome{480, "Temporarily Unavailable"}
	case code == 401 || code == 407:
		return outcome{403, "Forbidden"}
	case code == 488 || code == 606:
		return outcome{415, "Unsupported Media Type"}
	case code >= 400 && code < 700:
		return outcome{code, reason}
	}
	return outcome{500, "Server Internal Error"}
}

// sendOutcome maps the result of a SEND (its transaction response, a failure REPORT, or a local failure) to
// the MESSAGE's final response (SPEC §5 table 1, MSRP rows). A *msrp.StatusError (Connect's error when the
// first SEND of a connection is refused) maps as the response it carries.
func sendOutcome(code int, err error) outcome {
	var se *msrp.StatusError
	if errors.As(err, &se) {
		code, err = se.Code, nil
	}
	if err != nil {
		switch {
		case errors.Is(err, msrp.ErrConnLost):
			// Also when the connection was closed because its write queue stayed full (a peer that stopped
			// reading): the SENDs it took with it are lost with the connection, 480 (SPEC §5).
			return outcomeMSRPConnFailed
		case errors.Is(err, msrp.ErrQueueFull):
			return outcomeQueueFull // this SEND alone did not fit: the connection goes on
		}
		return outcomeMSRPConnFailed
	}
	switch code {
	case 200:
		return outcome{200, "OK"}
	case 413:
		return outcome{413, "Request Entity Too Large"}
	case 415:
		return outcome{415, "Unsupported Media Type"}
	case 403:
		return outcome{403, "Forbidden"}
	case 481, 506:
		return outcome{480, "Temporarily Unavailable"}
	case 408:
		return outcome{408, "Request Timeout"}
	}
	return outcome{500, "Server Internal Error"}
}

// MSRP → MESSAGE: the REPORT status for a SEND, from the final response to the MESSAGE it became.

// reportStatus maps the page-mode side's final response to the MSRP status of the REPORT (SPEC §5 table 2).
// The comment carries the SIP code and reason, e.g. "404 Not Found".
func reportStatus(o outcome) (status int, comment string) {
	if o.Code >= 200 && o.Code < 300 {
		return 200, "OK"
	}
	comment = o.String()
	switch {
	case o.Code == 408 || o.Code == 480 || o.Code == 503 || o.Code == 504:
		return 408, comment
	case o.Code == 413:
		return 413, comment
	case o.Code == 415 || o.Code == 488:
		return 415, comment
	}
	return 403, comment
}

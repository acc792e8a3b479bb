package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// bodyPrefix marks the tool's own messages, so that notifications and other traffic the gateway generates are
// counted apart instead of being mistaken for deliveries.
const bodyPrefix = "msrpgw-load"

// errNotOurs is returned by parseBody for a body the tool did not write.
var errNotOurs = errors.New("not a msrpgw-load body")

// stamp is what each message carries so that the receiving side can count it without shared state with the
// sender: the flow, the session index, the per-session sequence number and the send time (nanoseconds on the
// run's monotonic clock; both sides live in one process).
type stamp struct {
	flow    flowID
	session int
	seq     int64
	sentNs  int64
}

// format renders a stamp as a short text/plain body.
func (s stamp) format() string {
	return fmt.Sprintf("%s %s %d %d %d", bodyPrefix, s.flow, s.session, s.seq, s.sentNs)
}

// parseBody reads a stamp back; errNotOurs for any other body.
func parseBody(b []byte) (stamp, error) {
	f := strings.Fields(string(b))
	if len(f) != 5 || f[0] != bodyPrefix {
		return stamp{}, errNotOurs
	}
	var s stamp
	switch f[1] {
	case string(msgToMSRP):
		s.flow = msgToMSRP
	case string(msrpToMsg):
		s.flow = msrpToMsg
	case string(warmUp):
		s.flow = warmUp
	default:
		return stamp{}, fmt.Errorf("%w: unknown flow %q", errNotOurs, f[1])
	}
	var err error
	if s.session, err = strconv.Atoi(f[2]); err != nil || s.session < 0 {
		return stamp{}, fmt.Errorf("%w: session %q", errNotOurs, f[2])
	}
	if s.seq, err = strconv.ParseInt(f[3], 10, 64); err != nil || s.seq < 0 {
		return stamp{}, fmt.Errorf("%w: sequence %q", errNotOurs, f[3])
	}
	if s.sentNs, err = strconv.ParseInt(f[4], 10, 64); err != nil {
		return stamp{}, fmt.Errorf("%w: timestamp %q", errNotOurs, f[4])
	}
	return s, nil
}

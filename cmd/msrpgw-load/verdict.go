package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Exit statuses of the command (also in its -h text and docs/PERFORMANCE.md), so that scripts and CI can
// branch on a run's verdict without reading its JSON.
const (
	exitClean   = 0 // the run completed and its verdict is clean
	exitFailed  = 1 // the run could not measure: no gateway, no session set up, interrupted, a startup error
	exitUsage   = 2 // bad flags or configuration
	exitFaulted = 3 // the run completed, and the gateway lost, duplicated or reordered messages, or failed sessions
)

// faults lists what keeps a completed run from being clean, one line each; none for a clean run. Clean is:
// every session set up, ended by the tool's answered BYE (none ended by the gateway, no MSRP connection lost
// under one), and in every flow every message the tool meant to send was sent, answered 2xx and delivered
// once, in its session's order, and on no other session.
func (r *Report) faults() []string {
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	setups := func(what string, s SetupReport) {
		if s.Failures > 0 {
			add("%s: %d of %d setups failed %v", what, s.Failures, s.Count+s.Failures, s.Why)
		}
		if s.ByeFailure > 0 {
			add("%s: %d BYEs failed", what, s.ByeFailure)
		}
	}
	setups("sessions", r.Setups)
	if r.Churn != nil {
		setups("churn", *r.Churn)
	}
	if r.ByesFromGateway > 0 {
		add("the gateway ended %d sessions (BYE)", r.ByesFromGateway)
	}
	if r.ConnLost > 0 {
		add("%d MSRP connections lost", r.ConnLost)
	}
	for _, n := range slices.Sorted(maps.Keys(r.Flows)) {
		f := r.Flows[n]
		var bad []string
		count := func(v int64, what string) {
			if v > 0 {
				bad = append(bad, fmt.Sprintf("%d %s", v, what))
			}
		}
		count(f.Lost, "lost")
		count(f.Duplicated, "duplicated")
		count(f.Reordered, "reordered")
		count(f.Misrouted, "delivered on another session")
		count(f.NeverSent, "delivered that were never sent")
		count(f.SendErrors, "not sent (send errors)")
		count(f.NoResponse, "without a final response")
		var refused int64
		for code, k := range f.Responses {
			if !strings.HasPrefix(code, "2") {
				refused += k
			}
		}
		count(refused, "answered with a failure")
		if len(bad) > 0 {
			add("%s: %s of %d sent", n, strings.Join(bad, ", "), f.Sent)
		}
	}
	return out
}

package tune

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"time"
)

// busy is the share of its Ps' time the process may use before the Adapter adds one. A second P costs every
// message more CPU (Go wakes a second thread for each goroutine the network wakes, which mostly finds nothing
// to do), and it helps only when the first is nearly saturated: with one P at 70–80 % busy the gateway used
// 5–8 % less CPU per message than with two, with shorter scheduling waits and lower latency
// (docs/PERFORMANCE.md, "One P until it is nearly full").
const busy = 0.9

// The Adapter's timing: how often it measures, and how long the load must stay lower before it gives a P
// back.
const (
	procsInterval = 100 * time.Millisecond
	procsHold     = 3 * time.Second
)

// Want is the number of Ps for a process using util cores: enough that they are at most 90 % busy, at least
// one, at most limit.
func Want(util float64, limit int) int {
	return min(limit, max(1, int(math.Ceil(util/busy))))
}

// Adapter sets GOMAXPROCS from the process's measured CPU use.
type Adapter struct {
	Max      int           // the most Ps it uses: the runtime's default GOMAXPROCS when Start is called
	Interval time.Duration // how often CPU use is measured
	Hold     time.Duration // how long the load must stay lower before a P is given back
	Log      *slog.Logger

	cpu func() time.Duration // the process's CPU time so far
	set func(n int)          // sets GOMAXPROCS
}

// startProcs runs an Adapter until ctx ends, unless the operator fixed GOMAXPROCS in the environment or the
// process has one CPU only. It reports whether it runs.
func startProcs(ctx context.Context, log *slog.Logger) bool {
	limit := runtime.GOMAXPROCS(0) // Go's default: the CPUs, or the cgroup's quota
	if os.Getenv("GOMAXPROCS") != "" || limit < 2 || !canMeasureCPU {
		return false
	}
	a := &Adapter{Max: limit, Interval: procsInterval, Hold: procsHold, Log: log}
	log.Info("GOMAXPROCS adapts to the load", "min", 1, "max", limit)
	go a.Run(ctx)
	return true
}

// Run starts with one P and adjusts every Interval until ctx ends, then restores Max.
func (a *Adapter) Run(ctx context.Context) {
	cpu, set := a.cpu, a.set
	if cpu == nil {
		cpu = processCPU
	}
	if set == nil {
		set = func(n int) { runtime.GOMAXPROCS(n) }
	}
	cur := 1
	set(cur)
	defer set(a.Max)
	hold := max(1, int(a.Hold/a.Interval)) // samples
	var window []int                       // the last hold wants, since cur was set
	t := time.NewTicker(a.Interval)
	defer t.Stop()
	lastCPU, lastAt := cpu(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			used := cpu()
			util := float64(used-lastCPU) / float64(now.Sub(lastAt))
			lastCPU, lastAt = used, now
			want := Want(util, a.Max)
			if window = append(window, want); len(window) > hold {
				window = window[1:]
			}
			next := cur
			if want > cur {
				next = want // more load: at once
			} else if m := maxOf(window); len(window) == hold && m < cur {
				next = m // less load for all of Hold
			}
			if next != cur {
				a.Log.Debug("GOMAXPROCS changed", "from", cur, "to", next, "cpu_cores_used", math.Round(util*100)/100)
				cur = next
				set(cur)
				window = window[:0]
			}
		}
	}
}

func maxOf(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

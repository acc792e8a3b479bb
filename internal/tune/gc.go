package tune

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// HeapFloor is the daemon's heap floor: the heap size below which the collector does not run. GOGC is raised
// while the live heap is so small that GOGC's own goal would be lower.
const HeapFloor = 64 << 20

// runtimeMinGoal is the runtime's minimum heap goal at GOGC=100: it never lets the goal fall under
// 4 MiB × GOGC/100.
const runtimeMinGoal = 4 << 20

// HeapHeadroom is the most garbage the collector lets pile up above the live heap: with a large live heap
// (100,000 idle sessions hold ~750 MiB), GOGC=100 would double the process's memory; above 512 MiB of
// headroom GOGC is lowered instead. Idle sessions allocate little, so the extra collections cost little.
const HeapHeadroom = 512 << 20

// gcPercent is the GOGC that makes the heap goal max(floor, what base gives), but no more than headroom
// above the live heap. The runtime's goal is live + (live + roots) × GOGC/100, roots being the goroutine
// stacks and globals it scans. It is at most 100 × floor / 4 MiB, where the runtime's minimum goal reaches
// the floor: with a higher GOGC a nearly empty heap would grow past the floor before its first collection
// (seen: 190 MiB at GOGC 12,800).
func gcPercent(live, roots, floor, headroom uint64, base int) int {
	scan := live + roots
	if scan == 0 || base < 0 {
		return base
	}
	switch garbage := scan * uint64(base) / 100; {
	case live+garbage < floor:
		return max(base, int(min((floor-live)*100/scan, 100*floor/runtimeMinGoal)))
	case garbage > headroom:
		return max(1, int(headroom*100/scan))
	}
	return base
}

// StartHeapFloor keeps GOGC at gcPercent after every collection until ctx ends, unless the operator set GOGC
// in the environment. It reports whether it runs.
func StartHeapFloor(ctx context.Context, log *slog.Logger, floor uint64) bool {
	if os.Getenv("GOGC") != "" {
		return false
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		return false
	}
	log.Info("garbage collector keeps a heap floor", "heap_floor_mib", floor>>20, "gogc", base)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	cur := base
	var after func()
	after = func() {
		if ctx.Err() != nil {
			debug.SetGCPercent(base)
			return
		}
		metrics.Read(sample)
		var v [3]uint64
		for i, s := range sample {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		if v[0] > 0 {
			if p := gcPercent(v[0], v[1]+v[2], floor, HeapHeadroom, base); p != cur {
				cur = p
				debug.SetGCPercent(p)
			}
		}
		afterGC(after)
	}
	after()
	return true
}

// afterGC runs f (on the finalizer goroutine) after the next collection.
func afterGC(f func()) {
	s := new([64]byte) // not a tiny allocation: those may share a finalizer's object with others
	runtime.SetFinalizer(s, func(*[64]byte) { f() })
}

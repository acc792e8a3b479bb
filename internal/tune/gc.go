package tune

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// HeapFloor is the heap size below which the collector does not run: GOGC is raised while the live heap is
// so small that GOGC's own target would be lower.
const HeapFloor = 64 << 20

// maxGCPercent bounds the GOGC the floor sets. The runtime never lets the heap goal fall under a minimum of
// 4 MiB × GOGC/100, so with a higher GOGC a nearly empty heap would grow past the floor before its first
// collection (seen: 190 MiB at GOGC 12,800); at this bound that minimum is the floor itself.
const maxGCPercent = 100 * HeapFloor / (4 << 20)

// gcPercent is the GOGC that makes the heap goal max(HeapFloor, what base gives). The runtime's goal is
// live + (live + roots) × GOGC/100, roots being the goroutine stacks and globals it scans.
func gcPercent(live, roots uint64, base int) int {
	scan := live + roots
	if scan == 0 || base < 0 || live+scan*uint64(base)/100 >= HeapFloor {
		return base
	}
	return max(base, int(min((HeapFloor-live)*100/scan, maxGCPercent)))
}

// startHeapFloor keeps GOGC at gcPercent after every collection until ctx ends, unless the operator set GOGC
// in the environment. It reports whether it runs.
func startHeapFloor(ctx context.Context, log *slog.Logger) bool {
	if os.Getenv("GOGC") != "" {
		return false
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		return false
	}
	log.Info("garbage collector keeps a heap floor", "heap_floor_mib", HeapFloor>>20, "gogc", base)
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
			if p := gcPercent(v[0], v[1]+v[2], base); p != cur {
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

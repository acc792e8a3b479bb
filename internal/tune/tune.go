// Package tune adapts two Go runtime settings to a network daemon whose heap is small and whose work comes
// in many small pieces. The daemon starts it; a program embedding the gateway decides for itself.
//
//   - GOMAXPROCS (procs.go): one P while one core is enough, more as the load grows, up to the runtime's
//     default (the CPUs, or the cgroup's quota). With several Ps, every goroutine woken by the network makes
//     the runtime wake another thread that mostly finds nothing to do; at a few thousand messages a second
//     that costs 20–28 % more CPU per message than one P does for the same work (docs/PERFORMANCE.md).
//   - The garbage collector's heap floor (gc.go): with a small live heap, GOGC=100 collects every few
//     megabytes of garbage, i.e. many times a second under load. The floor lets the heap grow to HeapFloor
//     before a collection; a large live heap is collected at GOGC as before.
//
// Either is left alone when the operator set its environment variable (GOMAXPROCS, GOGC).
package tune

import (
	"context"
	"log/slog"
)

// Start adapts the runtime until ctx ends.
func Start(ctx context.Context, log *slog.Logger) {
	startProcs(ctx, log)
	StartHeapFloor(ctx, log, HeapFloor)
}

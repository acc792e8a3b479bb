package tune

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live, roots uint64
		base        int
		want        int
	}{
		{8 * mib, 0, 100, 700},       // 8 MiB live: collect at 64 MiB
		{8 * mib, 8 * mib, 100, 350}, // roots count toward the goal
		{16 * mib, 0, 100, 300},
		{32 * mib, 0, 100, 100}, // GOGC's own goal is the floor
		{40 * mib, 0, 100, 100}, // and above it GOGC stands
		{16 * mib, 0, 200, 300}, // an operator's higher GOGC is kept when it reaches further
		{8 * mib, 0, 1000, 1000},
		{0, 0, 100, 100}, // nothing measured
		{mib, 0, -1, -1}, // collection off stays off
		{1, 0, 100, 100 * HeapFloor / runtimeMinGoal},
		{1, 0, 2000, 2000},
		{512 * mib, 0, 100, 100},        // 512 MiB of garbage at most: GOGC stands
		{768 * mib, 0, 100, 66},         // a large live heap: the headroom caps the garbage
		{768 * mib, 256 * mib, 100, 50}, // roots count toward the goal here too
		{2048 * mib, 0, 400, 25},        // whatever the base
		{1 << 40, 0, 100, 1},            // never 0 (off)
	} {
		if got := gcPercent(tc.live, tc.roots, HeapFloor, HeapHeadroom, tc.base); got != tc.want {
			t.Errorf("gcPercent(%d MiB, %d MiB, %d) = %d, want %d", tc.live/mib, tc.roots/mib, tc.base, got, tc.want)
		}
	}
}

func currentGOGC() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until GOGC is want: the floor is set after a collection, on the finalizer goroutine.
func waitGOGC(t *testing.T, want func(int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !want(currentGOGC()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want %s", currentGOGC(), what)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// The test binary's live heap is a few MiB: with the floor, GOGC goes far above 100; when the context ends,
// it goes back.
func TestHeapFloorFollowsCollections(t *testing.T) {
	t.Setenv("GOGC", "") // as when the operator did not set it
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !StartHeapFloor(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), HeapFloor) {
		t.Fatal("startHeapFloor did not run")
	}
	waitGOGC(t, func(p int) bool { return p > 300 }, "above 300 (a live heap under 16 MiB)")
	cancel()
	waitGOGC(t, func(p int) bool { return p == 100 }, "100 again after the stop")
}

func TestHeapFloorRespectsEnvironment(t *testing.T) {
	t.Setenv("GOGC", "100")
	if StartHeapFloor(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), HeapFloor) {
		t.Fatal("startHeapFloor ran although GOGC was set")
	}
}

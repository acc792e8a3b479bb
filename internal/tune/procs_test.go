package tune

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestWant(t *testing.T) {
	for _, tc := range []struct {
		util  float64
		limit int
		want  int
	}{
		{0, 8, 1}, {0.5, 8, 1}, {0.85, 8, 1}, {0.9, 8, 1}, {0.91, 8, 2}, {1.0, 8, 2}, {1.8, 8, 2}, {1.81, 8, 3},
		{5, 4, 4}, {-1, 4, 1},
	} {
		if got := Want(tc.util, tc.limit); got != tc.want {
			t.Errorf("Want(%v, %d) = %d, want %d", tc.util, tc.limit, got, tc.want)
		}
	}
}

// fakeLoad plays a process whose CPU use (in cores) is set by the test, and records GOMAXPROCS settings.
type fakeLoad struct {
	mu    sync.Mutex
	cores float64
	cpu   time.Duration
	last  time.Time
	procs []int
}

func (f *fakeLoad) setCores(c float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	f.cores = c
}

func (f *fakeLoad) advance() {
	now := time.Now()
	if !f.last.IsZero() {
		f.cpu += time.Duration(float64(now.Sub(f.last)) * f.cores)
	}
	f.last = now
}

func (f *fakeLoad) readCPU() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advance()
	return f.cpu
}

func (f *fakeLoad) setProcs(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs = append(f.procs, n)
}

func (f *fakeLoad) current() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[len(f.procs)-1]
}

func waitProcs(t *testing.T, f *fakeLoad, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.current() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS stayed %d, want %d (settings: %v)", f.current(), want, f.procs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The Adapter starts at one P, adds Ps at once when the load needs them, gives them back only after Hold of
// lower load, and restores Max when it stops.
func TestAdapterFollowsLoad(t *testing.T) {
	f := &fakeLoad{}
	a := &Adapter{Max: 4, Interval: 10 * time.Millisecond, Hold: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), cpu: f.readCPU, set: f.setProcs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	f.setCores(0.2)
	time.Sleep(50 * time.Millisecond)
	waitProcs(t, f, 1)

	f.setCores(1.9) // needs 3 at 90 %
	waitProcs(t, f, 3)

	f.setCores(0.1)
	time.Sleep(a.Hold / 2)
	if got := f.current(); got != 3 {
		t.Fatalf("gave Ps back after %v of lower load, before Hold (%v): now %d", a.Hold/2, a.Hold, got)
	}
	waitProcs(t, f, 1)

	f.setCores(9) // capped at Max
	waitProcs(t, f, 4)

	cancel()
	<-done
	if got := f.current(); got != 4 {
		t.Fatalf("after stop GOMAXPROCS = %d, want Max 4", got)
	}
}

// The Adapter leaves GOMAXPROCS alone when the operator set it.
func TestProcsRespectEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	before := runtime.GOMAXPROCS(0)
	if startProcs(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))) {
		t.Fatal("Start ran although GOMAXPROCS was set")
	}
	if runtime.GOMAXPROCS(0) != before {
		t.Fatal("GOMAXPROCS changed")
	}
}

func TestProcessCPU(t *testing.T) {
	if !canMeasureCPU {
		t.Skip("this system has no process CPU time here; the Adapter does not run on it")
	}
	before := processCPU()
	end := time.Now().Add(30 * time.Millisecond)
	x := 0
	for time.Now().Before(end) {
		x++
	}
	if after := processCPU(); after-before < 10*time.Millisecond {
		t.Fatalf("30 ms of spinning measured as %v of CPU (%d)", after-before, x)
	}
}

package msrp

import (
	"bytes"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// signalWriter is a log destination that says when a line containing want was written.
type signalWriter struct {
	want []byte
	seen chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.want) {
		select {
		case w.seen <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Running out of file descriptors for a moment (a flood of connections, SIP's included) makes Accept fail
// with EMFILE. The listener must carry on once descriptors are free again, not stop accepting for good.
func TestEndpointAcceptSurvivesEMFILE(t *testing.T) {
	w := &signalWriter{want: []byte("too many open files"), seen: make(chan struct{}, 1)}
	e := newEP(t, Config{Logger: slog.New(slog.NewTextHandler(w, nil))}, false)
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	low := saved
	low.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
	}
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	// One descriptor for our side of the connection; the endpoint's Accept finds none left for its side.
	held[len(held)-1].Close()
	held = held[:len(held)-1]
	p := dialRaw(t, e)
	select {
	case <-w.seen:
	case <-time.After(waitFor):
		t.Fatal("Accept never failed with EMFILE")
	}
	release()

	// The connection waiting in the backlog is accepted, and so are new ones.
	waitUntil(t, "the waiting connection accepted", func() bool { return e.NumConns() == 1 })
	dialRaw(t, e)
	waitUntil(t, "a new connection accepted", func() bool { return e.NumConns() == 2 })
	_ = p
}

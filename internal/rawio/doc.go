// Package rawio wraps the gateway's sockets so that reads and writes are made as raw non-blocking system
// calls instead of through the Go runtime's blocking-syscall path.
//
// Why: every socket call the net package makes goes through runtime.entersyscall, and the first such call
// after the process was idle wakes the runtime's monitor thread (sysmon), which then polls every 20 µs for
// the next millisecond. A gateway that handles a message every 100–200 µs keeps it polling without pause:
// about 50,000 wake-ups a second, 13 % of the gateway's CPU under load (perf, docs/PERFORMANCE.md). The
// sockets are non-blocking, so a read or write returns at once (EAGAIN when it would block); nothing is
// gained by telling the scheduler about it. When a call would block, the goroutine waits in the runtime's
// network poller exactly as with the net package (syscall.RawConn), deadlines included.
//
// A wrapped packet conn's ReadFrom returns the sender as an *Addr, made once per sender while the sender
// stays the same: sipgo formats every datagram's sender, which would otherwise allocate several times per
// datagram.
//
// On systems other than Linux, and on 32-bit x86 Linux (whose socket calls go through socketcall(2)), the
// wrappers return what they are given.
package rawio

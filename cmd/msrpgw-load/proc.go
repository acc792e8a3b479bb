package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on every Linux ABI Go supports.
const clockTicks = 100

// procSample is what /proc says about a process at one moment.
type procSample struct {
	cpu    time.Duration // utime + stime
	rssKiB int64         // VmRSS
	fds    int           // entries in /proc/PID/fd (-1 when unreadable)
	// goroutines is go_goroutines from the gateway's metrics (-metrics; 0 when not read).
	goroutines int
	// runWait and slices are the sums over the process's threads of /proc/PID/task/TID/schedstat: time spent
	// ready to run but waiting for a CPU, and times put on a CPU. schedOK is false where the kernel keeps
	// no schedstat.
	runWait time.Duration
	slices  int64
	schedOK bool
}

// cpuTimes is the machine's CPU time since boot from the first line of /proc/stat, in clock ticks: all of
// it, and the part stolen, when this is a virtual machine, by the host running something else while a vCPU
// had work.
type cpuTimes struct{ total, steal int64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(b)
}

// parseCPUTimes reads "cpu user nice system idle iowait irq softirq steal [guest guest_nice]". Guest time is
// already counted in user and nice, so the total is the first eight.
func parseCPUTimes(b []byte) (cpuTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: first line %q is not the cpu line with steal time", line)
	}
	var t cpuTimes
	for i := 1; i <= 8; i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: cpu field %d %q: %w", i, f[i], err)
		}
		t.total += v
	}
	t.steal, _ = strconv.ParseInt(f[8], 10, 64)
	return t, nil
}

// stealPercent is the share of the machine's CPU time between a and b that the host stole; nil when unknown.
func stealPercent(a, b cpuTimes) *float64 {
	if b.total <= a.total {
		return nil
	}
	pct := 100 * float64(b.steal-a.steal) / float64(b.total-a.total)
	return &pct
}

// readSchedstat sums the schedstat of every thread of the process at dir (/proc/PID).
func readSchedstat(dir string) (wait time.Duration, slices int64, ok bool) {
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		return 0, 0, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended since the listing
		}
		w, n, err := parseSchedstat(b)
		if err != nil {
			return 0, 0, false
		}
		wait, slices, ok = wait+w, slices+n, true
	}
	return wait, slices, ok
}

// parseSchedstat reads one thread's schedstat: "on-CPU ns, run-queue wait ns, timeslices".
func parseSchedstat(b []byte) (wait time.Duration, slices int64, err error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("schedstat %q: want 3 fields", b)
	}
	w, err1 := strconv.ParseInt(f[1], 10, 64)
	n, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("schedstat %q: not numbers", b)
	}
	return time.Duration(w), n, nil
}

// readGoroutines reads go_goroutines from a Prometheus text exposition at url.
func readGoroutines(url string) (int, error) {
	// No keep-alive: an idle connection of ours would count as one of the gateway's fds.
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return 0, fmt.Errorf("%s: %s", url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return 0, err
	}
	return parseGoroutines(body)
}

// parseGoroutines finds the go_goroutines sample in a Prometheus text exposition.
func parseGoroutines(body []byte) (int, error) {
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("go_goroutines %q: %w", v, err)
			}
			return int(f), nil
		}
	}
	return 0, errors.New("no go_goroutines sample in the metrics")
}

// readProc samples /proc/PID (pid 0 = this process).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, fmt.Errorf("read %s/stat: %w", dir, err)
	}
	// The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("%s/stat: no ')' in %q", dir, stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are f[11] and f[12].
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("%s/stat: only %d fields after the name", dir, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("%s/stat: utime %q stime %q are not numbers", dir, f[11], f[12])
	}
	s := procSample{cpu: time.Duration(ut+st) * time.Second / clockTicks, fds: -1}
	if status, err := os.ReadFile(dir + "/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				s.rssKiB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	if ents, err := os.ReadDir(dir + "/fd"); err == nil {
		s.fds = len(ents)
	}
	s.runWait, s.slices, s.schedOK = readSchedstat(dir)
	return s, nil
}

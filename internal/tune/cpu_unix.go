//go:build unix

package tune

import (
	"syscall"
	"time"
)

// canMeasureCPU says whether processCPU works here.
const canMeasureCPU = true

// processCPU is the user and system CPU time of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

//go:build !unix

package tune

import "time"

// canMeasureCPU says whether processCPU works here: not on this system, so GOMAXPROCS stays as Go sets it.
const canMeasureCPU = false

func processCPU() time.Duration { return 0 }

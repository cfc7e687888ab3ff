//go:build unix

package statemachine

import (
	"syscall"
	"time"
)

// cpuTime returns the user and system CPU time the process has used: on a
// shared machine, benchmarks report it beside wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

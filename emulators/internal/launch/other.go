//go:build !linux

package launch

import (
	"context"
	"errors"
	"time"
)

// errUnsupported is returned on systems other than Linux: the launcher needs
// Pdeathsig and /proc to guarantee that no emulator outlives its parent.
var errUnsupported = errors.New("the emulator launchers need Linux (Pdeathsig, /proc)")

// ErrExited is wrapped by [Process.WaitReady] when the emulator exits
// before it is ready.
var ErrExited = errors.New("emulator exited")

// ErrGiveUp is wrapped by a readiness check that has decided the emulator
// can never become ready.
var ErrGiveUp = errors.New("emulator can't become ready")

// Spec describes the process to start.
type Spec struct {
	Name string
	Path string
	Args []string
	Env  []string
}

// Process is a running emulator. On this system none can be started.
type Process struct{}

// Start returns an error: unsupported on this system.
func Start(Spec) (*Process, error) { return nil, errUnsupported }

// Pid returns 0.
func (*Process) Pid() int { return 0 }

// Exited returns nil.
func (*Process) Exited() <-chan struct{} { return nil }

// ExitErr returns nil.
func (*Process) ExitErr() error { return nil }

// Output returns "".
func (*Process) Output() string { return "" }

// Stop returns an error: unsupported on this system.
func (*Process) Stop(time.Duration) error { return errUnsupported }

// WaitReady returns an error: unsupported on this system.
func (*Process) WaitReady(context.Context, func(context.Context) error) error {
	return errUnsupported
}

// ListeningPorts returns an error: unsupported on this system.
func (*Process) ListeningPorts() ([]int, error) { return nil, errUnsupported }

// HoldsPort returns an error: unsupported on this system.
func (*Process) HoldsPort(int) (bool, error) { return false, errUnsupported }

// GroupMembers returns an error: unsupported on this system.
func GroupMembers(int) ([]int, error) { return nil, errUnsupported }

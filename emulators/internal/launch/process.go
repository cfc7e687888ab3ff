//go:build linux

package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrExited is wrapped by [Process.WaitReady] when the emulator exits before
// it is ready.
var ErrExited = errors.New("emulator exited")

// ErrGiveUp is wrapped by a readiness check that has decided the emulator
// can never become ready (for example, its port is held by another process);
// [Process.WaitReady] then returns at once instead of polling on.
var ErrGiveUp = errors.New("emulator can't become ready")

// Spec describes the process to start.
type Spec struct {
	// Name is used in error messages, e.g. "Spanner emulator".
	Name string
	// Path is the executable; Args its arguments (without argv[0]).
	Path string
	Args []string
	// Env is added to the parent's environment (later entries win).
	Env []string
}

// Process is a running emulator: the leader of its own process group.
type Process struct {
	name string
	cmd  *exec.Cmd
	pid  int
	out  *outputLog

	exited chan struct{} // closed when the leader has exited; it stays unreaped
	reap   chan struct{} // closed by stop: the supervisor may now reap the leader
	reaped chan struct{} // closed once cmd.Wait has returned

	waitErr error // set before reaped is closed

	stopOnce sync.Once
	stopErr  error
}

// pollInterval is how often WaitReady runs its check.
const pollInterval = 10 * time.Millisecond

// Start starts spec's process in a new process group with
// Pdeathsig = SIGKILL. Its stdout and stderr are captured for error
// messages ([Process.Output]). The caller must call [Process.Stop].
func Start(spec Spec) (*Process, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	out := newOutputLog()
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild that inherited the output pipe must not block Wait forever.
	cmd.WaitDelay = time.Second
	p := &Process{
		name:   spec.Name,
		cmd:    cmd,
		out:    out,
		exited: make(chan struct{}),
		reap:   make(chan struct{}),
		reaped: make(chan struct{}),
	}
	started := make(chan error, 1)
	go p.supervise(started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("couldn't start the %s (%s): %w", spec.Name, spec.Path, err)
	}
	return p, nil
}

// supervise starts the child and stays on the forking OS thread until the
// child has been reaped: Linux delivers Pdeathsig when that thread exits, so
// the thread must live exactly as long as the child (golang/go#27505).
func (p *Process) supervise(started chan<- error) {
	runtime.LockOSThread()
	if err := p.cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		started <- err
		return
	}
	p.pid = p.cmd.Process.Pid
	started <- nil
	// Wait for the leader to exit without reaping it (WNOWAIT): while it is
	// an unreaped zombie its pid, and so its process-group id, cannot be
	// reused, and stop may still signal the group safely.
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	close(p.exited)
	<-p.reap
	p.waitErr = p.cmd.Wait()
	close(p.reaped)
	// Returning while locked retires this thread; the child is gone, so its
	// parent-death signal has nothing left to kill.
}

// Pid returns the leader's process id, which is also the process-group id.
func (p *Process) Pid() int { return p.pid }

// Exited is closed when the leader process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr returns the leader's exit status as reported by exec.Cmd.Wait.
// It is meaningful only after [Process.Stop] has returned.
func (p *Process) ExitErr() error {
	select {
	case <-p.reaped:
		return p.waitErr
	default:
		return nil
	}
}

// Output returns the captured stdout and stderr: the first and the last few
// kilobytes.
func (p *Process) Output() string { return p.out.String() }

// Stop ends the process group: SIGTERM to the group, up to grace for the
// leader to exit, then SIGKILL to the group; it reaps the leader and waits
// until no live (non-zombie) process of the group remains. It is safe to
// call more than once and from several goroutines; later calls return the
// first call's result.
func (p *Process) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(grace) })
	return p.stopErr
}

func (p *Process) stop(grace time.Duration) error {
	pgid := p.pid
	// The leader is not reaped before close(p.reap) below, so pgid still
	// names our group and no one else's.
	_ = unix.Kill(-pgid, unix.SIGTERM)
	timer := time.NewTimer(grace)
	select {
	case <-p.exited:
	case <-timer.C:
	}
	timer.Stop()
	// Whatever ignored SIGTERM, and any child the leader left behind.
	_ = unix.Kill(-pgid, unix.SIGKILL)
	<-p.exited
	close(p.reap)
	<-p.reaped
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive, err := GroupMembers(pgid)
		if err != nil {
			return fmt.Errorf("couldn't check that the %s stopped: %w", p.name, err)
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("couldn't stop the %s: processes %v of group %d are still alive after SIGKILL", p.name, alive, pgid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitReady runs check every few milliseconds until it returns nil (ready),
// returns an error wrapping [ErrGiveUp], the leader exits (an error wrapping
// [ErrExited]; the process is then stopped and reaped), or ctx ends. Errors
// carry the last check failure and the captured output.
func (p *Process) WaitReady(ctx context.Context, check func(ctx context.Context) error) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		select {
		case <-p.exited:
			stopErr := p.Stop(0)
			return fmt.Errorf("the %s (pid %d) exited before it was ready (%v; last check: %v): %w%s\noutput:\n%s",
				p.name, p.pid, p.ExitErr(), last, ErrExited, suffix(stopErr), p.Output())
		default:
		}
		err := check(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrGiveUp) {
			return fmt.Errorf("couldn't get the %s (pid %d) ready: %w\noutput:\n%s", p.name, p.pid, err, p.Output())
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("couldn't get the %s (pid %d) ready (last check: %v): %w\noutput:\n%s",
				p.name, p.pid, last, ctx.Err(), p.Output())
		case <-ticker.C:
		case <-p.exited:
		}
	}
}

func suffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// ListeningPorts returns the TCP ports (IPv4 and IPv6) on which some live
// process of the group holds a socket in LISTEN state, in increasing order
// without duplicates.
func (p *Process) ListeningPorts() ([]int, error) {
	pids, err := GroupMembers(p.pid)
	if err != nil {
		return nil, err
	}
	return listeningPorts(pids)
}

// HoldsPort reports whether the group holds a LISTEN socket on port and
// nobody else does. A port shared with a stranger (SO_REUSEPORT) or held
// only by a stranger yields an error wrapping [ErrGiveUp]; a port not yet
// bound by anyone yields (false, nil).
func (p *Process) HoldsPort(port int) (bool, error) {
	pids, err := GroupMembers(p.pid)
	if err != nil {
		return false, err
	}
	ours, theirs, err := portListeners(pids, port)
	switch {
	case err != nil:
		return false, err
	case theirs > 0:
		return false, fmt.Errorf("port %d is also held by another process: %w", port, ErrGiveUp)
	default:
		return ours > 0, nil
	}
}

// outputLog keeps the first headMax and the last tailMax bytes written.
type outputLog struct {
	mu      sync.Mutex
	head    []byte
	tail    []byte // ring buffer once full
	tailPos int
	dropped int64
}

const (
	headMax = 8 << 10
	tailMax = 24 << 10
)

func newOutputLog() *outputLog { return &outputLog{} }

func (l *outputLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(b)
	if room := headMax - len(l.head); room > 0 {
		k := min(room, len(b))
		l.head = append(l.head, b[:k]...)
		b = b[k:]
	}
	for len(b) > 0 {
		if len(l.tail) < tailMax {
			k := min(tailMax-len(l.tail), len(b))
			l.tail = append(l.tail, b[:k]...)
			b = b[k:]
			continue
		}
		k := min(tailMax-l.tailPos, len(b))
		copy(l.tail[l.tailPos:], b[:k])
		l.dropped += int64(k)
		l.tailPos = (l.tailPos + k) % tailMax
		b = b[k:]
	}
	return n, nil
}

func (l *outputLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.head)
	if l.dropped > 0 {
		s += fmt.Sprintf("\n[... %d bytes left out ...]\n", l.dropped)
	}
	return s + string(l.tail[l.tailPos:]) + string(l.tail[:l.tailPos])
}

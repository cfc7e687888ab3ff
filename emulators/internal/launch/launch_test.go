//go:build linux

package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the "emulator": with helperEnv set it runs
// one of the helper modes below instead of the tests.
const helperEnv = "CONIFER_LAUNCH_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode, os.Args[len(os.Args)-1])
		return
	}
	os.Exit(m.Run())
}

// runHelper implements the helper modes:
//
//	listen       listen on 127.0.0.1:0, print "port=N", start a child in the
//	             same group ("sleep"), print "child=PID", block
//	listen-reuse listen with SO_REUSEPORT on 127.0.0.1:arg, print "port=N", block
//	ignore-term  ignore SIGTERM, print "ready", block
//	sleep        block
//	exit         print "boom" to stderr, exit 3
//	parent       start a "listen" helper with Start, print "child=PID", block
func runHelper(mode, arg string) {
	block := func() { select {} }
	switch mode {
	case "listen":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("port=%d\n", l.Addr().(*net.TCPAddr).Port)
		child := exec.Command(os.Args[0], "sleep")
		child.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("child=%d\n", child.Process.Pid)
		block()
	case "listen-reuse":
		l, err := listenReusePort("127.0.0.1:" + arg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("port=%d\n", l.Addr().(*net.TCPAddr).Port)
		block()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		block()
	case "sleep":
		block()
	case "exit":
		fmt.Fprintln(os.Stderr, "boom")
		os.Exit(3)
	case "parent":
		p, err := Start(helperSpec("listen"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("child=%d\n", p.Pid())
		block()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
}

func listenReusePort(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, 0xf /* SO_REUSEPORT */, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

func helperSpec(mode string, args ...string) Spec {
	return Spec{
		Name: "test helper " + mode,
		Path: os.Args[0],
		Args: append([]string{"-test.run=^$", mode}, args...),
		Env:  []string{helperEnv + "=" + mode},
	}
}

func startHelper(t *testing.T, mode string, args ...string) *Process {
	t.Helper()
	p, err := Start(helperSpec(mode, args...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	return p
}

// waitOutput waits until the process's output matches re and returns the
// first submatch.
func waitOutput(t *testing.T, p *Process, re *regexp.Regexp) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got string
	err := p.WaitReady(ctx, func(context.Context) error {
		m := re.FindStringSubmatch(p.Output())
		if m == nil {
			return errors.New("not yet")
		}
		got = m[1]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

var (
	portRE  = regexp.MustCompile(`port=(\d+)`)
	childRE = regexp.MustCompile(`child=(\d+)`)
	readyRE = regexp.MustCompile(`(ready)`)
)

func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if members, err := GroupMembers(pgid); err != nil || len(members) != 0 {
		t.Errorf("group %d still has live members %v (err %v)", pgid, members, err)
	}
	if err := syscall.Kill(pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) = %v, want ESRCH", pgid, err)
	}
}

// TestStopKillsGroup: the leader and the child it started are both in the
// group, the group's one listening port is found, and Stop leaves nothing.
func TestStopKillsGroup(t *testing.T) {
	p := startHelper(t, "listen")
	port, _ := strconv.Atoi(waitOutput(t, p, portRE))
	child, _ := strconv.Atoi(waitOutput(t, p, childRE))
	members, err := GroupMembers(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || !contains(members, p.Pid()) || !contains(members, child) {
		t.Errorf("GroupMembers = %v, want leader %d and child %d", members, p.Pid(), child)
	}
	ports, err := p.ListeningPorts()
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 1 || ports[0] != port {
		t.Errorf("ListeningPorts = %v, want [%d]", ports, port)
	}
	if ok, err := p.HoldsPort(port); !ok || err != nil {
		t.Errorf("HoldsPort(%d) = %v, %v; want true, nil", port, ok, err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, p.Pid())
	if alive(child) {
		t.Errorf("child %d survived Stop", child)
	}
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("ExitErr = %v, want death by SIGTERM", p.ExitErr())
	}
}

// alive reports whether pid names a process that is neither gone nor a
// zombie (an orphan killed with its group may wait a moment for init to
// reap it).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	state, _, err := parseStat(stat)
	return err == nil && state != 'Z' && state != 'X'
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestStopEscalatesToKill: a leader that ignores SIGTERM is SIGKILLed after
// the grace period.
func TestStopEscalatesToKill(t *testing.T) {
	p := startHelper(t, "ignore-term")
	waitOutput(t, p, readyRE)
	if err := p.Stop(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("ExitErr = %v, want death by SIGKILL", p.ExitErr())
	}
	assertGroupGone(t, p.Pid())
}

// TestParentDeathKillsEmulator: when the process that started an emulator
// is SIGKILLed (no chance to run Stop), the kernel kills the emulator.
func TestParentDeathKillsEmulator(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$", "parent")
	parent.Env = append(os.Environ(), helperEnv+"=parent")
	stdout, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := childRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("parent printed %q, want child=PID", line)
	}
	child, _ := strconv.Atoi(m[1])
	if members, _ := GroupMembers(child); len(members) == 0 {
		t.Fatalf("emulator group %d is not running", child)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		members, err := GroupMembers(child)
		if err != nil {
			t.Fatal(err)
		}
		// The child's own child ("sleep") has no parent-death signal; it
		// is in the group, so only the leader is required to die here.
		if !contains(members, child) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("emulator %d still alive 10s after its parent was killed", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Clean up the grandchild left behind by the dead leader.
	_ = syscall.Kill(-child, syscall.SIGKILL)
}

// TestWaitReadyExited: an emulator that exits early gives ErrExited with
// its output.
func TestWaitReadyExited(t *testing.T) {
	p := startHelper(t, "exit")
	err := p.WaitReady(context.Background(), func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, ErrExited) {
		t.Fatalf("WaitReady = %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %q lacks the output or the exit status", err)
	}
	assertGroupGone(t, p.Pid())
}

// TestWaitReadyTimeout: the deadline ends the wait, with the last check's
// error in the message.
func TestWaitReadyTimeout(t *testing.T) {
	p := startHelper(t, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err := p.WaitReady(ctx, func(context.Context) error { return errors.New("still warming up") })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still warming up") {
		t.Errorf("WaitReady = %v, want DeadlineExceeded with the last check error", err)
	}
}

// TestHoldsPortShared: an emulator sharing its port with a stranger through
// SO_REUSEPORT (what two Spanner emulators do) is detected; so is a port
// held by a stranger alone, and a port nobody holds yet is reported as such.
func TestHoldsPortShared(t *testing.T) {
	stranger, err := listenReusePort("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	port := stranger.Addr().(*net.TCPAddr).Port

	idle := startHelper(t, "sleep")
	if ok, err := idle.HoldsPort(port); ok || !errors.Is(err, ErrGiveUp) {
		t.Errorf("HoldsPort of a stranger's port = %v, %v; want false, ErrGiveUp", ok, err)
	}
	free, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := idle.HoldsPort(free); ok || err != nil {
		t.Errorf("HoldsPort of a free port = %v, %v; want false, nil", ok, err)
	}

	p := startHelper(t, "listen-reuse", strconv.Itoa(port))
	if got, _ := strconv.Atoi(waitOutput(t, p, portRE)); got != port {
		t.Fatalf("helper listens on %d, want %d", got, port)
	}
	if ok, err := p.HoldsPort(port); ok || !errors.Is(err, ErrGiveUp) {
		t.Errorf("HoldsPort of a shared port = %v, %v; want false, ErrGiveUp", ok, err)
	}
	stranger.Close()
	if ok, err := p.HoldsPort(port); !ok || err != nil {
		t.Errorf("HoldsPort once the stranger left = %v, %v; want true, nil", ok, err)
	}
}

// TestBinary checks the SDK-root override and the missing-package errors.
func TestBinary(t *testing.T) {
	root := t.TempDir()
	t.Setenv(SDKRootEnv, root)
	if got, err := SDKRoot(); got != root || err != nil {
		t.Errorf("SDKRoot() = %q, %v; want the override %q", got, err, root)
	}
	_, err := Binary("bin/x/emu", "some-debian-package")
	if !errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "apt-get install some-debian-package") {
		t.Errorf("missing binary: err = %v, want ErrNotInstalled naming the package", err)
	}
	dir := filepath.Join(root, "bin", "x")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "emu")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Binary("bin/x/emu", "pkg"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("non-executable binary: err = %v, want ErrNotInstalled", err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Binary("bin/x/emu", "pkg"); got != path || err != nil {
		t.Errorf("Binary = %q, %v; want %q", got, err, path)
	}
	if _, err := Binary("bin/x", "pkg"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("directory as binary: err = %v, want ErrNotInstalled", err)
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		state byte
		pgrp  int
		ok    bool
	}{
		{"123 (emulator_main) S 1 123 123 0 -1", 'S', 123, true},
		{"7 (a b) c) (d) R 1 42 7 0", 'R', 42, true},
		{"9 (java) Z 1 9 9", 'Z', 9, true},
		{"9 (java) S 1", 0, 0, false},
		{"9 java S 1 9 9", 0, 0, false},
		{"9 (java) S 1 x 9", 0, 0, false},
		{"9 (java) SS 1 9 9", 0, 0, false},
	} {
		state, pgrp, err := parseStat([]byte(tc.in))
		if (err == nil) != tc.ok || state != tc.state || pgrp != tc.pgrp {
			t.Errorf("parseStat(%q) = %c, %d, %v; want %c, %d, ok=%v", tc.in, state, pgrp, err, tc.state, tc.pgrp, tc.ok)
		}
	}
}

// TestOutputLog compares the log with a plain model for every split of
// writes around the head and tail limits.
func TestOutputLog(t *testing.T) {
	for _, total := range []int{0, 1, headMax - 1, headMax, headMax + 1, headMax + tailMax, headMax + tailMax + 1, headMax + 3*tailMax + 17} {
		for _, chunk := range []int{1, 7, 4096, tailMax + 5} {
			var all []byte
			l := newOutputLog()
			for len(all) < total {
				n := min(chunk, total-len(all))
				b := make([]byte, n)
				for i := range b {
					b[i] = byte('a' + (len(all)+i)%26)
				}
				if k, err := l.Write(b); k != n || err != nil {
					t.Fatalf("Write = %d, %v", k, err)
				}
				all = append(all, b...)
			}
			want := string(all)
			if len(all) > headMax+tailMax {
				dropped := len(all) - headMax - tailMax
				want = string(all[:headMax]) + fmt.Sprintf("\n[... %d bytes left out ...]\n", dropped) + string(all[len(all)-tailMax:])
			}
			if got := l.String(); got != want {
				t.Errorf("total %d chunk %d: String() differs from the model (len %d vs %d)", total, chunk, len(got), len(want))
			}
		}
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d from FreePort can't be bound: %v", port, err)
	}
	l.Close()
}

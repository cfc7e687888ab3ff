//go:build linux

package launch

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// procRoot is where procfs is mounted.
const procRoot = "/proc"

// GroupMembers returns the pids of the live (not zombie) processes whose
// process-group id is pgid, in increasing order.
func GroupMembers(pgid int) ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("couldn't list processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue // the process ended while we looked
		}
		state, pgrp, err := parseStat(stat)
		if err != nil {
			return nil, fmt.Errorf("couldn't read the status of process %d: %w", pid, err)
		}
		if pgrp == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// parseStat extracts the state and the process-group id from the contents
// of /proc/PID/stat: "pid (comm) state ppid pgrp ...". comm may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (state byte, pgrp int, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no ')' in stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, fmt.Errorf("malformed pgrp in stat %q", b)
	}
	return f[0][0], pgrp, nil
}

// socketInodes returns the inode numbers of the sockets open in any of pids.
func socketInodes(pids []int) map[uint64]bool {
	inodes := make(map[uint64]bool)
	for _, pid := range pids {
		dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // ended, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil {
				continue
			}
			rest, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			if ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
				inodes[ino] = true
			}
		}
	}
	return inodes
}

// tcpListenState is the kernel's TCP_LISTEN in the "st" column.
const tcpListenState = "0A"

// listeningPorts returns the ports of the LISTEN sockets held by pids.
func listeningPorts(pids []int) ([]int, error) {
	mine := socketInodes(pids)
	var ports []int
	for _, table := range []string{"net/tcp", "net/tcp6"} {
		socks, err := readTCPTable(filepath.Join(procRoot, table))
		if errors.Is(err, fs.ErrNotExist) && table == "net/tcp6" {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, err
		}
		for _, s := range socks {
			if s.state == tcpListenState && mine[s.inode] {
				ports = append(ports, s.port)
			}
		}
	}
	slices.Sort(ports)
	return slices.Compact(ports), nil
}

// portListeners counts the LISTEN sockets on port (any address, IPv4 or
// IPv6) held by pids (ours) and by anyone else (theirs).
func portListeners(pids []int, port int) (ours, theirs int, err error) {
	mine := socketInodes(pids)
	for _, table := range []string{"net/tcp", "net/tcp6"} {
		socks, err := readTCPTable(filepath.Join(procRoot, table))
		if errors.Is(err, fs.ErrNotExist) && table == "net/tcp6" {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		for _, s := range socks {
			if s.state != tcpListenState || s.port != port {
				continue
			}
			if mine[s.inode] {
				ours++
			} else {
				theirs++
			}
		}
	}
	return ours, theirs, nil
}

type tcpSocket struct {
	port  int
	state string
	inode uint64
}

// readTCPTable parses /proc/net/tcp or /proc/net/tcp6: a header line, then
// one socket per line, "sl local_address rem_address st ... uid timeout
// inode ...", local_address being HEXADDR:HEXPORT.
func readTCPTable(path string) ([]tcpSocket, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the TCP socket table: %w", err)
	}
	defer f.Close()
	var socks []tcpSocket
	sc := bufio.NewScanner(f)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("couldn't parse the local address %q in %s", f[1], path)
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse the port %q in %s: %w", portHex, path, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("couldn't parse the inode %q in %s: %w", f[9], path, err)
		}
		socks = append(socks, tcpSocket{port: int(port), state: f[3], inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("couldn't read %s: %w", path, err)
	}
	return socks, nil
}

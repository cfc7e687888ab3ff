// Package launch starts and stops the official Google Cloud emulators
// (Spanner, Pub/Sub) as child processes that can never outlive their parent.
//
// What it promises:
//
//   - Binaries are found under the Cloud SDK root: $CONIFER_GCLOUD_SDK_ROOT
//     when set, otherwise `gcloud info --format='value(installation.sdk_root)'`
//     (asked once per process). A missing gcloud or binary is an error that
//     wraps [ErrNotInstalled] and names the Debian package to install.
//   - Each emulator runs in its own process group (Setpgid) with
//     Pdeathsig = SIGKILL, started from a goroutine locked to its OS thread
//     for the whole life of the child, because Linux sends the parent-death
//     signal when the forking *thread* exits, not the process
//     (golang/go#27505). If the test binary is killed or panics, the kernel
//     kills the emulator.
//   - [Process.Stop] signals the whole group (SIGTERM, then SIGKILL after a
//     grace period) while the leader is still unreaped, so the group id
//     cannot have been reused by an unrelated process when it is signalled;
//     then it reaps the leader and waits until no live process of the group
//     remains.
//   - Ports: [Process.ListeningPorts] reads /proc to find the TCP sockets in
//     LISTEN state that belong to the group. Launchers use it to learn the
//     port an emulator bound when started on port 0, and to check that a
//     pre-picked port is really held by *their* emulator and not by a
//     neighbour (the Spanner emulator's gRPC server sets SO_REUSEPORT, so two
//     of them can silently share one port; the Pub/Sub emulator keeps
//     running after a BindException).
//
// The package is Linux-only (Pdeathsig, /proc); elsewhere [Start] returns
// an error.
package launch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// SDKRootEnv names the environment variable that overrides the Cloud SDK
// root (the directory that holds bin/ and platform/). When set, gcloud is
// not consulted.
const SDKRootEnv = "CONIFER_GCLOUD_SDK_ROOT"

// ErrNotInstalled is wrapped by every error caused by a missing gcloud,
// emulator binary or Java runtime. The error text names the Debian package
// to install.
var ErrNotInstalled = errors.New("emulator not installed")

var gcloudRoot struct {
	once sync.Once
	root string
	err  error
}

// SDKRoot returns the Cloud SDK root directory: the value of
// $CONIFER_GCLOUD_SDK_ROOT if set (read on every call), else the answer of
// `gcloud info` (asked once per process and cached).
func SDKRoot() (string, error) {
	if root := os.Getenv(SDKRootEnv); root != "" {
		return root, nil
	}
	gcloudRoot.once.Do(func() {
		gcloudRoot.root, gcloudRoot.err = askGcloud()
	})
	return gcloudRoot.root, gcloudRoot.err
}

func askGcloud() (string, error) {
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		return "", fmt.Errorf("couldn't find gcloud (install it with `apt-get install google-cloud-cli`, or set %s to the Cloud SDK root): %w: %w", SDKRootEnv, ErrNotInstalled, err)
	}
	out, err := exec.Command(gcloud, "info", "--format=value(installation.sdk_root)").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		return "", fmt.Errorf("couldn't ask gcloud for the SDK root (%s): %w", stderr, err)
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		return "", fmt.Errorf("couldn't find the Cloud SDK root: gcloud info printed nothing")
	}
	return root, nil
}

// Binary returns the path of the executable rel (slash-separated, relative
// to the SDK root). If it is missing or not executable, the error wraps
// [ErrNotInstalled] and tells the user to install debPackage.
func Binary(rel, debPackage string) (string, error) {
	root, err := SDKRoot()
	if err != nil {
		return "", fmt.Errorf("couldn't locate %s (from the Debian package %s): %w", rel, debPackage, err)
	}
	path := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("couldn't find the executable %s under the Cloud SDK root %s: install it with `apt-get install %s`: %w", rel, root, debPackage, ErrNotInstalled)
	}
	return path, nil
}

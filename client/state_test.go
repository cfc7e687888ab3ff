package client_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/conifer-kt/conifer/checkpoint"
	"github.com/conifer-kt/conifer/client"
)

func TestFileState(t *testing.T) {
	dir := t.TempDir()
	s := &client.FileState{Path: filepath.Join(dir, "state.note")}
	if b, err := s.Load(); err != nil || b != nil {
		t.Fatalf("missing file: %q %v", b, err)
	}
	for _, note := range [][]byte{[]byte("first\n"), []byte("second, longer\n"), []byte("x\n")} {
		if err := s.Store(note); err != nil {
			t.Fatal(err)
		}
		b, err := s.Load()
		if err != nil || !bytes.Equal(b, note) {
			t.Fatalf("load after store: %q %v", b, err)
		}
	}
	fi, err := os.Stat(s.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in the directory", len(ents))
	}
	// An oversized file is refused.
	if err := os.WriteFile(s.Path, make([]byte, checkpoint.MaxNoteLen+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(); err == nil {
		t.Error("oversized state accepted")
	}
	// A store into a missing directory fails and leaves nothing.
	bad := &client.FileState{Path: filepath.Join(dir, "no", "such", "state")}
	if err := bad.Store([]byte("x")); err == nil {
		t.Error("store into a missing directory succeeded")
	}
	var m client.MemoryState
	m.Store([]byte("a"))
	b, _ := m.Load()
	b[0] = 'b'
	if b2, _ := m.Load(); string(b2) != "a" {
		t.Error("MemoryState aliases its caller")
	}
}

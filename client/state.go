package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/conifer-kt/conifer/checkpoint"
)

// State stores the newest checkpoint a client has verified, as its signed
// note, so that later answers can be checked for rollback and fork.
//
// Promises: Load returns the note most recently passed to a Store that
// returned nil (nil if there is none); a Store that returns nil is durable;
// a failed Store leaves the previous note in place. Implementations must be
// safe for concurrent use; the Client serialises its own calls, but two
// processes sharing a FileState may each overwrite the other's newer note
// with an older one of the same log (which weakens nothing but freshness:
// every note a client stores was proven consistent with the one it had).
type State interface {
	Load() ([]byte, error)
	Store(note []byte) error
}

// MemoryState is a State in process memory.
type MemoryState struct {
	mu   sync.Mutex
	note []byte
}

// Load implements State.
func (m *MemoryState) Load() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.note...), nil
}

// Store implements State.
func (m *MemoryState) Store(note []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.note = append([]byte(nil), note...)
	return nil
}

// FileState is a State kept in one file: exactly the signed note, readable
// with any text tool and by note-aware tooling. The file is created with
// mode 0600 and replaced atomically (write to a temporary file in the same
// directory, sync, rename, sync the directory), so a crash leaves either the
// old or the new note.
type FileState struct {
	// Path is the file's path. Its directory must exist.
	Path string
	mu   sync.Mutex
}

// Load implements State. A missing file is no state.
func (f *FileState) Load() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read client state: %w", err)
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, checkpoint.MaxNoteLen+1))
	if err != nil {
		return nil, fmt.Errorf("couldn't read client state: %w", err)
	}
	if len(b) > checkpoint.MaxNoteLen {
		return nil, fmt.Errorf("couldn't read client state: %s is larger than a checkpoint note", f.Path)
	}
	return b, nil
}

// Store implements State.
func (f *FileState) Store(note []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := WriteFileAtomic(f.Path, note, 0o600); err != nil {
		return fmt.Errorf("couldn't store client state: %w", err)
	}
	return nil
}

// WriteFileAtomic replaces the file at path with data, with the given mode:
// it writes a temporary file in the same directory, syncs it, renames it over
// path and syncs the directory. Readers see the old or the new content,
// never a mix, and after a crash the file holds one of the two.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems cannot sync directories; the rename is done.
	_ = d.Sync()
	return nil
}

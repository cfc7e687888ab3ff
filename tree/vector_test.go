package tree

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateVectors = flag.Bool("update", false, "rewrite tree/testdata/vector.txt")

// accumulatedVector is the hash of every root of the run in vectorRun. It
// changes only if the tree's hashing or shape changes: that is a format
// change, to be made deliberately (run go test -run TestVector -update and
// update this constant).
const accumulatedVector = "a8cca1fd27bc43fc462751f922128f4182f46095119ed2523ed337a0edb854b8"

const vectorFile = "vector.txt"

// vectorRun replays a seeded pseudo-random run of 64 versions (inserts of
// random and near-neighbour keys, value updates and removals) and returns
// acc = SHA-256(acc ‖ root) over the roots of versions 1..64, starting
// from 32 zero bytes. Every root is also checked against the reference.
func vectorRun(t *testing.T) Hash {
	r := rand.New(rand.NewPCG(2026, 11))
	s := NewMemoryStore()
	tr := New(s)
	model := map[Key]Hash{}
	var keys []Key
	var acc Hash
	for v := range 64 {
		var ch []Change
		seen := map[Key]bool{}
		for range 1 + r.IntN(200) {
			var k Key
			switch x := r.IntN(10); {
			case x < 6 || len(keys) == 0:
				k = randKey(r)
				if x == 0 && len(keys) > 0 {
					k = flip(keys[r.IntN(len(keys))], 8+r.IntN(248))
				}
				keys = append(keys, k)
			default:
				k = keys[r.IntN(len(keys))]
			}
			if seen[k] {
				continue
			}
			seen[k] = true
			ch = append(ch, Change{Key: k, Value: randHash(r), Remove: r.IntN(8) == 0})
		}
		root := update(t, tr, s, uint64(v), ch)
		model = applyModel(model, ch)
		if want := refRoot(model); root != want {
			t.Fatalf("version %d: root %v, reference %v", v+1, root, want)
		}
		acc = sha256.Sum256(append(acc[:], root[:]...))
	}
	return acc
}

// TestVector checks the accumulated root vector against the constant
// above and against tree/testdata/vector.txt, which carries it for other
// implementations.
func TestVector(t *testing.T) {
	got := vectorRun(t).String()
	path := filepath.Join("testdata", vectorFile)
	if *updateVectors {
		text := "# Conifer tree accumulated root vector (tree/vector_test.go, vectorRun).\n" +
			"# 64 versions of a math/rand/v2 PCG(2026, 11) run: random inserts, near-neighbour\n" +
			"# keys, value updates and removals; acc = SHA-256(acc || root) from 32 zero bytes.\n" +
			"accumulated " + got + "\n"
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got != accumulatedVector {
		t.Errorf("accumulated vector = %s, want %s", got, accumulatedVector)
	}
	want, err := readVector(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("accumulated vector = %s, %s says %s", got, path, want)
	}
}

func readVector(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("couldn't open vector file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "accumulated "); ok {
			if _, err := hex.DecodeString(v); err != nil || len(v) != 64 {
				return "", fmt.Errorf("couldn't parse vector %q", v)
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("couldn't find an accumulated line in %s", path)
}

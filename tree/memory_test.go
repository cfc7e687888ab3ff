package tree_test

import (
	"testing"

	"github.com/conifer-kt/conifer/tree"
	"github.com/conifer-kt/conifer/tree/treetest"
)

func TestMemoryConformance(t *testing.T) {
	treetest.Run(t, func(t *testing.T) (tree.Store, func() tree.Store) {
		s := tree.NewMemoryStore()
		return s, func() tree.Store { return s }
	})
}

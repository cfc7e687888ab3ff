// Package tree is Conifer's authenticated dictionary: a versioned,
// compressed binary Merkle prefix tree mapping 256-bit keys (VRF outputs,
// so uniformly random) to 32-byte values (leaf-record hashes), with one
// root per version. Version n is the tree after epoch n; version 0 is the
// empty tree.
//
// It proves, against a root, either that a key has a given value or that
// it is absent, in about 32·log2(N) bytes. It is pure: it imports no cloud
// package, reads no clock and uses no randomness. Storage is a small
// interface (Store) with batched, versioned reads; this package has an
// in-memory Store, tree/disk an on-disk one, and tree/treetest the
// conformance suite every Store must pass.
//
// # The logical tree
//
// Picture the complete binary tree of depth 256: the root is at depth 0
// and the path to a key follows its bits, most significant bit of byte 0
// first (0 = left). The subtree at a position is one of:
//
//   - empty (no key in it): its hash is Empty;
//   - a leaf, if it holds exactly one key: its hash is the leaf hash of
//     that key and value, wherever the position is (the leaf is "pushed
//     up" to the highest position whose subtree holds only its key);
//   - an internal node, if it holds two or more: its hash is the node hash
//     of its two halves, even when one half is empty.
//
// With one-byte domain separation (SHA-256; every hashed input is 65
// bytes, two compression blocks, except Empty's):
//
//	Empty          = SHA-256(0x02 ‖ "conifer/tree/empty/v1")
//	                 = 707e52ff5a174a3572bc3156d4b3afeb34f1f0ff64ca71e19b3edec891afec5b
//	leaf(key, val) = SHA-256(0x00 ‖ key ‖ val)
//	node(l, r)     = SHA-256(0x01 ‖ l ‖ r)
//
// The root is the hash at depth 0 (Empty for the empty tree). It depends
// only on the set of key-value pairs, not on the order they were inserted
// in or how they were batched. No leaf or node hash equals Empty, and leaf
// and node hashes cannot be confused, without a SHA-256 collision; that is
// what makes the proofs below sound.
//
// # What is stored
//
// A Store keeps, per version, only the positions that matter, as Nodes:
//
//   - each leaf, at its (pushed-up) position, with its key and value;
//   - each branch point (an internal node whose two halves are both
//     non-empty), with the hashes of its two halves.
//
// An internal node with one empty half ("chain level") is not stored: its
// hash is recomputed on the fly from the branch point or leaf below it. For
// N random keys there are about 0.44·N chain levels, about one per path,
// mostly just above the bottom branch point of a path.
//
// A branch point is stored not at its own position but at the top of the
// chain above it: the position just below its parent branch point (the root
// position, for the top one), and the Node records its own position in
// Branch. (A leaf never has a chain above it, so it is always stored at
// its own position.) This is a deliberate change from storing branch points
// at their own positions: with that, a key whose path leaves a chain half
// way down would need the chain's other end, which is not on the key's
// path, and absence proofs would need a search instead of reads of the
// key's own path positions. Here every proof and update needs exactly the
// nodes stored at positions on the keys' paths, and each stored node is a
// position's one record: the stored positions of a non-empty version are
// exactly the root position and the two children of every branch point.
//
// So a walk down a key's path reads the node at depth 0, and from an
// internal node with branch point at depth j either finds that the key
// leaves the chain above j (an empty subtree: absence) or goes on to the
// node stored at depth j+1 on its path, until a leaf. Its siblings are
// Empty along chains, the stored half hashes at branch points, and, where
// the key leaves a chain, the hash of the rest of the chain.
//
// # Versions and storage
//
// Version 0, the empty tree, is implicit: a fresh Store is at version 0
// and the first Update writes version 1. Each stored node has a version; a
// read at version v sees, at each position, the newest node written at a
// version ≤ v. When a position
// stops holding a node (only when keys are removed: a removal can make a
// branch point disappear and a sibling move up), a Deleted marker is
// written there. Conifer never removes keys (erasure is a tombstone
// value), but Change.Remove is supported and tested.
//
// Tree.Update reads the nodes on the changed keys' paths at version v (a
// batch of k keys costs O(k log N) reads and writes; the tree is never
// loaded whole), computes the new version, hashing large independent
// subtrees in parallel, and writes its nodes as version v+1. The caller
// then commits v+1 (Store.Commit), typically in the same transaction as
// its epoch. Reads are batched for remote stores: the first 32 levels of
// all the paths in one ReadNodes call, deeper levels only for the few
// paths that need them. For random keys and N up to about 2^28, a proof
// takes one ReadNodes call and an update of a thousand keys one or two.
//
// # Proofs
//
// A proof for key k follows k's path to its terminal: the first position
// whose subtree is empty or a single leaf. Its kind is Inclusion (the
// terminal is k's own leaf), AbsenceEmpty (an empty subtree) or AbsenceLeaf
// (the leaf of another key k', sharing the terminal depth d's bits with
// k). It carries the d sibling hashes along the path, and for AbsenceLeaf
// k' and its value. A verifier hashes the terminal and folds the siblings
// up to the root.
//
// A proof is canonical, and ParseProof accepts it, only if it could come
// from Prove on some tree, as far as can be checked without k and the
// root: d ≤ 256 (≤ 255 for absence: an empty subtree at depth 256 would
// have a one-key sibling, and a leaf sharing 256 bits with k is k's); the
// sibling at depth d is not Empty (a leaf is pushed up as far as it goes,
// so its sibling holds a key, and an empty half's sibling holds the two or
// more keys of its parent); an AbsenceLeaf's other key differs from k and
// shares its first d bits (checked at verification). The encoding:
//
//	proof    = version:0x01 ‖ kind:uint8 ‖ depth:uint16be ‖ bitmap ‖ siblings ‖ other
//	kind     = 0x00 inclusion / 0x01 absence, empty / 0x02 absence, other leaf
//	bitmap   = ceil(depth/8) bytes: bit i (most significant bit of byte 0
//	           first) is 1 iff the sibling at depth i+1 is not Empty;
//	           bits past depth are 0
//	siblings = each non-Empty sibling hash (32 bytes), depth 1 first; an
//	           Empty sibling is never written out
//	other    = other key (32) ‖ its value (32), only for kind 0x02
//
// ParseProof rejects anything else: other versions or kinds, depth > 256,
// set padding bits, an Empty hash written out, missing or trailing bytes.
// With N random keys a proof has about log2(N)+0.3 non-empty siblings: at
// N = 10^6, about 670 bytes on average (840 at most in a sample of 4·10^5).
//
// # Example
//
// Take three keys, written by their first byte (the other 31 bytes zero):
// A = 00…, B = 80…, C = c0…. The root holds all three and both its halves
// are non-empty, so it is a branch point. Its left half (depth 1, prefix
// 0) holds only A: a leaf. Its right half holds B and C, which differ at
// bit 1: a branch point at depth 1. The store holds five nodes:
//
//	0/     internal, branch 0/,  left = leaf(A,a), right = node(leaf(B,b), leaf(C,c))
//	1/00   leaf A
//	1/80   internal, branch 1/80, left = leaf(B,b), right = leaf(C,c)
//	2/80   leaf B
//	2/c0   leaf C
//
// Now insert D = 00…01, which shares 255 bits with A. The subtree at 1/00
// now holds A and D; they first differ at bit 255, so its branch point is
// at depth 255 and levels 1 to 254 on their path form a chain. The node
// stored at 1/00 becomes "internal, branch 255/00…, left = leaf(A,a),
// right = leaf(D,d)", and A and D are stored at 256/00…00 and 256/00…01;
// nothing is stored at depths 2 to 255.
//
// The inclusion proof of A then has depth 256 and two non-Empty siblings,
// node(leaf(B,b), leaf(C,c)) at depth 1 and leaf(D,d) at depth 256: it is
// 01 00 0100, a 32-byte bitmap 80 00 … 00 01, then the two hashes (100
// bytes). For E = 00…0100 (sharing A's first 247 bits) the walk leaves the
// chain at bit 247: an AbsenceEmpty proof of depth 248 whose siblings are
// the right half at depth 1, Empty at depths 2 to 247, and at depth 248
// the chain folded up from the branch point: node(node(…node(node(leaf(A,a),
// leaf(D,d)), Empty)…, Empty), Empty) with seven chain levels.
package tree

// Package checkpoint implements Conifer's epoch log and its signed
// checkpoints: the keyserver's C2SP signed checkpoints
// (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note), the
// verifiers' C2SP cosignatures (https://c2sp.org/tlog-cosignature, v1,
// Ed25519), and the RFC 6962 Merkle log of epoch heads they sign.
//
// The package is pure: no clock (cosigners get one as a function), no
// randomness, no I/O except through [HashReader] and [Ed25519Signer]. Note
// signing and verification go through golang.org/x/mod/sumdb/note, log
// hashing and proofs through github.com/transparency-dev/merkle.
//
// # The epoch log
//
// Every epoch the keyserver appends the encoded epoch head (see package
// format) as the next leaf of an append-only Merkle log, hashed as in
// RFC 6962 with SHA-256:
//
//	leaf hash  = SHA-256(0x00 || encoded epoch head)      LeafHash
//	node hash  = SHA-256(0x01 || left hash || right hash)
//	empty root = SHA-256("")                               EmptyRoot
//
// Leaf i holds the head of the i-th epoch published, so a log of size n
// holds epochs 0 to n-1. Only perfect-subtree hashes are stored, addressed
// by compact.NodeID (level, index); [AppendLeaf] returns the ones an append
// completes (about two on average) for the caller to persist, and
// [InclusionProof], [ConsistencyProof] and [Root] read O(log n) of them
// through a [HashReader]. [MemoryLog] is the in-memory store the verifier
// keeps. Proofs are the RFC 6962 audit paths and consistency proofs
// (RFC 6962 §2.1.1, §2.1.2), checked by [VerifyInclusion] and
// [VerifyConsistency].
//
// # Checkpoints
//
// A checkpoint is the head of the epoch log, as the text of a signed note:
//
//	<origin>                  the realm name
//	<size>                    decimal, no leading zeros
//	<base64 root hash>        standard padded base64 of the 32-byte root
//
// every line ending in a newline. [Checkpoint] documents the exact grammar
// and limits; [Parse] accepts only canonical texts and [Checkpoint.Marshal]
// produces them. Extension lines are parsed and preserved as the
// specification says, but Conifer never produces them and refuses them
// wherever it signs or accepts a checkpoint of a realm ([ErrExtensions]):
// the Ed25519 cosignature covers them, yet no cosigner can check them.
//
// # Signatures
//
// A signed note is the text, a blank line, then one line per signature:
//
//	"— " <key name> " " base64( key ID (4 bytes, big-endian) || signature ) "\n"
//
// with key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]
// ([KeyHash]). Keys are written as verifier key strings ([VerifierKey]):
//
//	<key name>+<key ID as 8 lowercase hex digits>+<base64(signature type || public key)>
//
// The keyserver signs with an Ed25519 key of signature type 0x01 (held in
// Cloud KMS, reached through [Ed25519Signer]); its key name is the realm
// name, equal to the checkpoint origin. It signs the note text itself:
//
//	signature = Ed25519(keyserver key, text)                            64 bytes
//
// A verifier cosigns with an Ed25519 key of signature type 0x04 under its
// own name (a schema-less URL); it signs a domain-separated, timestamped
// message ([CosignedMessage]):
//
//	message   = "cosignature/v1\n" "time " <decimal POSIX seconds> "\n" text
//	signature = timestamp (8 bytes, big-endian, < 2^63) || Ed25519(verifier key, message)   72 bytes
//
// meaning "as of this time, this is the largest checkpoint of the log I have
// verified as consistent". [LogSigner] and [Cosigner] are the two
// note.Signers; both refuse to sign anything but a canonical checkpoint,
// the LogSigner only of its own realm. [NewVerifier] and [NewVerifiers]
// turn verifier key strings of either type into note.Verifiers.
//
// # Opening and merging
//
// [Open] is the client's check: the note is well-formed and canonical (no
// two signature lines for one key), every signature by a configured key
// verifies, the keyserver signed it, the origin is the realm, and at least
// a quorum of distinct configured cosigners cosigned it. Signatures by
// other keys are ignored. It returns the checkpoint and each cosigner's
// timestamp. [Merge] is the ratify function's step: it adds verifiers'
// cosignatures to the stored note, keeping the newest per cosigner and
// writing the keyserver's signature first and the cosignatures sorted by
// key name and key ID, so the stored note is the same whatever order
// cosignatures arrive in.
//
// # Example
//
// Keyserver key: Ed25519 seed of 32 bytes 0x01, realm "example.com/realm".
// Verifier key: seed of 32 bytes 0x02, name "verifier.example/v1". Their
// verifier key strings:
//
//	example.com/realm+206cb619+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c
//	verifier.example/v1+ce671b5a+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU
//
// The log holds three leaves, "head 0", "head 1" and "head 2"; its root is
// SHA-256(0x01 || SHA-256(0x01 || H("head 0") || H("head 1")) || H("head 2"))
// with H(x) = SHA-256(0x00 || x). The checkpoint signed by the keyserver
// and cosigned by the verifier at 1767225600 (2026-01-01T00:00:00Z) is:
//
//	example.com/realm
//	3
//	NwM89pJwORUr12R+ketjNUEaGq1FAJiC0qtWBbqqjcU=
//
//	— example.com/realm IGy2GU2SRErmkTtmuwY5zqBwf1vdt066xGx5r+yvoSgNh1y/GEuWUHdus44uaj34u6gBwu3kCKr8WF7aNN7Qx9YowQQ=
//	— verifier.example/v1 zmcbWgAAAABpVbkAQdRPopWMr5a4tt1cOHypTAIO8nKu+sbbiovAm8WaTZmq1tbOdLEl3Q4sym9PrKFSyw7ucBY6/f60hI7PUZbfCQ==
//
// The cosignature line decodes to the key ID ce671b5a, the timestamp
// 0x000000006955b900 = 1767225600, and the Ed25519 signature of
//
//	cosignature/v1
//	time 1767225600
//	example.com/realm
//	3
//	NwM89pJwORUr12R+ketjNUEaGq1FAJiC0qtWBbqqjcU=
//
// The package example reproduces this note; testdata/conifer-example.txtar
// holds it as computed by an independent implementation.
package checkpoint

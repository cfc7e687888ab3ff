// Package format defines Conifer's canonical byte formats: everything that
// is hashed, signed or replayed by verifiers. SPEC.md at the repository root
// is the same specification in one document, with annotated examples; the
// vectors in testdata/vectors.json pin every format to exact bytes.
//
// # Conventions
//
// Every format is encoded by hand, big-endian, with explicit lengths, and
// has exactly one encoding for each value. Parsers are strict: they reject
// trailing bytes, over-long fields, any order but the canonical one,
// duplicates, booleans other than 0 and 1, and every value the format's rules
// forbid. Every successful parse satisfies encode(parse(b)) == b. Errors are
// *Error values naming the field as a path from the outer format:
//
//	format: entry.policy.keys[2]: keys not in strictly increasing key-id order
//
// and wrap ErrMalformed (through ErrTruncated, ErrTrailingData, ErrTooLarge,
// ErrNotCanonical or ErrInvalid). Parsed values never alias the input.
//
// Grammars are written in a TLS-presentation-like notation beside each
// Marshal method: uint8/16/32/64 are big-endian integers, opaque x[n] is n
// bytes, "uint8 x_len; opaque x[x_len]" is a length-prefixed string, and
// T xs[count] is count values of T back to back.
//
// # Hashes and tags
//
// All hashes are SHA-256 with a domain-separation tag:
//
//	H(tag, parts...) = SHA-256( uint8(len(tag)) || tag || parts... )
//
// with every part but the last of fixed length. The tags are:
//
//	conifer/profile-commitment/v1  CommitProfile(opening, profile)
//	conifer/key-id/v1              KeyIDOf(public key), first 8 bytes
//	conifer/entry/v1               EntryHash(entry)
//	conifer/entry-signature/v1     SigningMessage(entry hash), signed by policy keys
//	conifer/registration/v1        RegistrationMessage(entry hash), signed by a registrar
//	conifer/oidc-nonce/v1          OIDCNonce(entry hash), base64url in an ID token
//	conifer/leaf-record/v1         LeafRecordHash(leaf record), the tree leaf value
//	conifer/bundle-digest/v1       digest of a whole bundle, carried by its chunks
//
// Signature messages are the tag-prefixed entry hash (the tag's length byte,
// the tag, the 32-byte hash), signed with Ed25519 as is. Because entry
// approvals and registrar authorisations use different tags, a signature of
// one kind is never a signature of the other, and neither can be mistaken
// for a C2SP signed note or co-signature (whose messages start with text).
//
// Two encodings are hashed by RFC 6962 Merkle trees, which add no tag of
// ours: log records (UpdatesRoot) and epoch heads (the epoch log). The epoch
// head therefore starts with its own tag, "conifer/epoch-head/v1", making it
// self-describing; the bundle and bundle chunk transport formats also start
// with a tag, so a receiver can tell them and their version apart.
//
// # Formats
//
//	Profile       a user's application keys; only its commitment is published
//	Policy        nested threshold quorum over Ed25519 keys
//	Entry         one version of a user: realm, index, version, prev, policy, commitment
//	SignedEntry   an entry with the signatures of policy keys
//	Registration  how a version 1 entry was authorised (registrar or OIDC)
//	LogRecord     a SignedEntry plus, for version 1, its Registration
//	LeafRecord    entry hash, epoch, previous leaf record hash (the history chain)
//	EpochHead     realm, epoch, time, tree root, update count, updates root
//	Bundle        head, checkpoint and log records of one epoch
//	BundleChunk   a piece of a bundle small enough for one Pub/Sub message
//
// # Rules that span entries
//
// A user's first entry has version 1 and an all-zero prev, and its log record
// carries a Registration. Each later entry has version = previous + 1 and
// prev = EntryHash(previous); it must be signed by a quorum of the previous
// entry's policy (authorising the change) and of its own policy (proving the
// new keys are held). CheckTransition and VerifyUpdateSignatures implement
// these rules; the statemachine applies them in log order.
//
// # Worked example
//
// Key k0 has seed SHA-256("conifer/vectors/key/0"), public key 1204e881…c8aa
// and KeyID 13c462e050613d5b. The registration entry of user "alice" in realm
// "example.com", with policy 1-of-{k0} and the commitment to an empty
// profile under opening 000102…0f, encodes as:
//
//	0b                                 realm length 11
//	6578616d706c652e636f6d             realm "example.com"
//	3df0994508315ce1b3843302981e1769
//	43b0f24826fc163bbb3d35d307019d00   index (SHA-256("index alice") in the vectors)
//	0000000000000001                   version 1
//	00…00 (32 bytes)                   prev: none
//	0001                               policy.threshold 1
//	01                                 policy.key_count 1
//	1204e881855f2cb617ca41951ce274d9
//	69a8e9bac77f1e4f31bfc2d42af9c8aa   policy.keys[0] (k0)
//	00                                 policy.subpolicy_count 0
//	00                                 tombstone: no
//	ce9688cb74f5444dc0448a8f20586d78
//	841fec7845b1084fa20fb6e1796d6c4b   commitment
//
// Its EntryHash is 15d7a02937df7aa908c4f7560ec1c09d10abfaf5fa4bda5f2a06b9df0fafa55d,
// k0 signs SigningMessage = 1a || "conifer/entry-signature/v1" || that hash,
// and an OIDC registration would need the nonce
// 5thF_7PHsrJcKPJjgFPSGWyVXAbdmlgIPUzsPobrPbU.
//
// # Purity
//
// The package reads no clock, uses no randomness (profile openings are
// supplied by the caller) and does no I/O.
package format

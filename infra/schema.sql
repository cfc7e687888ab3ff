-- Conifer's Spanner schema (GoogleSQL dialect).
--
-- One file serves three users: the tests (infra.SchemaDDL applies it to the
-- Cloud Spanner emulator), the local stack, and Terraform (which splits it
-- into the database's `ddl` list; see terraform/modules/ddl). Fine-grained
-- access control (CREATE ROLE / GRANT) lives in roles.sql because the
-- emulator rejects it.
--
-- File rules (checked by infra.SplitDDL and its test): statements end with
-- ';'; '--' starts a comment that runs to the end of the line; outside
-- comments only printable ASCII without quotes, backticks, '#' or '/*'.
-- A deployed database's DDL is append-only: never edit a statement that has
-- been applied; append an ALTER instead (Terraform replaces the database if
-- an earlier statement changes, and deletion protection refuses that).
--
-- Design rules for real Spanner:
--   * No hot spot: no table that takes many writes has a monotonically
--     increasing leading key. Random keys (VRF outputs) lead where they
--     exist; the log is sharded; the few tables keyed by epoch number take
--     about one write per epoch (at most ~1/s).
--   * Commits stay under 80,000 mutations (an insert costs one mutation per
--     column written plus one per secondary index entry). A big epoch is
--     written in several transactions: its LeafRecords and TreeNodes rows are
--     invisible until its Epochs row commits, because every reader filters by
--     the newest committed epoch (Epochs) and never looks at newer rows.
--   * Interleaving keeps one user's rows (Users, Profiles, LeafRecords) and
--     one epoch's rows (Epochs, EpochRejections, Cosignatures) together in one
--     split, so a lookup or a receipt is a single-split read.
--   * Byte lengths of hashes, keys and openings are CHECKed exactly, so a
--     truncated value can never be stored.
--
-- Vocabulary: "user index" = the 32-byte tree key, the first 32 bytes of the
-- VRF output over the realm-separated user id. No table stores a user id.

-- Log: the update log. Every accepted update is appended here by the update
-- function, in the same read-write transaction that moves its Users row, and
-- is never changed or deleted (verifiers and auditors replay it from epoch 1).
-- The epoch function cuts it at a strong-read timestamp T: epoch N contains
-- the rows with PreviousCut < CommitTs <= T, ordered by (CommitTs, Shard, Seq).
-- Read by the epoch function (replay) and the feed function (bundles for
-- verifiers).
--
-- Key: CommitTs alone would send every append to the tail of one split. The
-- leading Shard spreads appends over up to 256 ranges, each with its own tail;
-- a cut reads all 256 possible ranges (one query with Shard IN
-- UNNEST(GENERATE_ARRAY(0, 255)) and a CommitTs range: 256 seeks, no scan),
-- so the shard count can change without a reader noticing.
CREATE TABLE Log (
  -- Shard = the first byte of UserIndex modulo the deployment's shard count
  -- (spanstore Options.Shards: default 16, at most 256). Writers derive it,
  -- readers cover the whole range 0..255; deriving it from the user keeps
  -- one user's updates in one range, where their CommitTs order is already
  -- total.
  Shard INT64 NOT NULL,
  -- Spanner commit timestamp of the appending transaction
  -- (PENDING_COMMIT_TIMESTAMP()): the log's sequence number. Updates of one
  -- user are serialised by the Users row, so their commit timestamps are
  -- strictly increasing.
  CommitTs TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  -- Tie-breaker for rows of the same shard committed at the same timestamp
  -- (transactions of different users may share a commit timestamp): 16
  -- random bytes (crypto/rand) chosen by the appending transaction.
  Seq BYTES(16) NOT NULL,
  -- The VRF tree key of the updated user (32 bytes).
  UserIndex BYTES(32) NOT NULL,
  -- The canonical log record (format package): the signed entry plus, for a
  -- registration, its authorisation. Never a profile, an opening or a user
  -- id: verifiers receive these bytes.
  Record BYTES(MAX) NOT NULL,
  CONSTRAINT LogShardRange CHECK (Shard >= 0 AND Shard <= 255),
  CONSTRAINT LogSeqLength CHECK (BYTE_LENGTH(Seq) = 16),
  CONSTRAINT LogUserIndexLength CHECK (BYTE_LENGTH(UserIndex) = 32),
) PRIMARY KEY (Shard, CommitTs, Seq);

-- Users: one row per user index, the newest entry appended to the log for
-- that user (not necessarily in an epoch yet). Written and read by the update
-- function inside its read-write transaction: reading it locks the user, so
-- concurrent updates of one user serialise, and a request built on an older
-- version is answered 409 Conflict. Parent of the user's Profiles and
-- LeafRecords (interleaved: one split holds everything about a user).
-- The statemachine, not this row, is the authority on what was applied: if
-- an epoch rejects the update this row holds, the epoch function (just
-- before the epoch commit) rewinds the row to the newest applied entry
-- (Version, EntryHash, Entry; the Log* columns keep naming the rejected
-- append), or deletes it if the user has none, so the user can send a valid
-- successor of what was applied. A row that moved on after the cut is left
-- alone (its later epoch rewinds it if need be).
CREATE TABLE Users (
  -- The VRF tree key (32 bytes): uniformly random, so rows spread evenly.
  UserIndex BYTES(32) NOT NULL,
  -- Version of the newest appended entry (1 for a registration).
  Version INT64 NOT NULL,
  -- Domain-separated hash of that entry (format package): the Prev field
  -- the next entry must carry.
  EntryHash BYTES(32) NOT NULL,
  -- The signed entry bytes (entry plus its signatures), so the update
  -- function can check the next update against the current policy without
  -- reading the log.
  Entry BYTES(MAX) NOT NULL,
  -- Key of the Log row that carried this entry: a receipt for the update.
  -- LogCommitTs is the commit timestamp of the same transaction.
  LogShard INT64 NOT NULL,
  LogCommitTs TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  LogSeq BYTES(16) NOT NULL,
  CONSTRAINT UsersUserIndexLength CHECK (BYTE_LENGTH(UserIndex) = 32),
  CONSTRAINT UsersVersionPositive CHECK (Version >= 1),
  CONSTRAINT UsersEntryHashLength CHECK (BYTE_LENGTH(EntryHash) = 32),
  CONSTRAINT UsersLogShardRange CHECK (LogShard >= 0 AND LogShard <= 255),
  CONSTRAINT UsersLogSeqLength CHECK (BYTE_LENGTH(LogSeq) = 16),
) PRIMARY KEY (UserIndex);

-- Profiles: the private half of an entry, which the log and the tree only
-- commit to: commitment = H(domain || Opening || Profile). Written by the
-- update function in the transaction that appends the entry; read by lookup
-- and history (served only for versions whose LeafRecords row is in a
-- committed epoch). Erasure deletes every row of the user (a tombstone entry
-- in the same transaction), after which the commitments reveal nothing.
-- Verifiers never see this table. ON DELETE CASCADE: deleting a Users row
-- takes its profiles with it.
CREATE TABLE Profiles (
  UserIndex BYTES(32) NOT NULL,
  -- Entry version this profile belongs to. DESC: the newest version is the
  -- first row of the user.
  Version INT64 NOT NULL,
  -- Canonical profile encoding (public keys by application id).
  Profile BYTES(MAX) NOT NULL,
  -- The random 16-byte commitment opening.
  Opening BYTES(16) NOT NULL,
  CONSTRAINT ProfilesVersionPositive CHECK (Version >= 1),
  CONSTRAINT ProfilesOpeningLength CHECK (BYTE_LENGTH(Opening) = 16),
) PRIMARY KEY (UserIndex, Version DESC),
  INTERLEAVE IN PARENT Users ON DELETE CASCADE;

-- LeafRecords: the history chain of a user, one row per applied version.
-- Written by the epoch function (possibly over several transactions for a
-- big epoch) before the epoch's Epochs row commits; invisible until then:
-- lookup and history read only rows with Epoch <= the newest committed epoch.
-- A redone epoch attempt writes identical rows (same inputs, deterministic
-- statemachine), so the writes are idempotent. An insert costs about 7
-- mutations (5 columns, the stored Bucket, the index entry). ON DELETE
-- NO ACTION (the default): a user with published history cannot be
-- deleted.
CREATE TABLE LeafRecords (
  UserIndex BYTES(32) NOT NULL,
  -- Entry version (DESC: newest first; a lookup reads the first visible row).
  Version INT64 NOT NULL,
  -- Epoch that applied this version.
  Epoch INT64 NOT NULL,
  -- The canonical leaf record (entry hash, epoch, hash of the previous leaf
  -- record); its hash is the tree value at UserIndex.
  Record BYTES(MAX) NOT NULL,
  -- The signed entry bytes the record commits to (served with proofs).
  Entry BYTES(MAX) NOT NULL,
  -- First byte of UserIndex, for LeafRecordsByEpoch (see there).
  Bucket BYTES(1) AS (SUBSTR(UserIndex, 1, 1)) STORED,
  CONSTRAINT LeafRecordsVersionPositive CHECK (Version >= 1),
  CONSTRAINT LeafRecordsEpochNonNegative CHECK (Epoch >= 0),
) PRIMARY KEY (UserIndex, Version DESC),
  INTERLEAVE IN PARENT Users;

-- LeafRecordsByEpoch finds the rows one epoch wrote: to discard the rows of a
-- failed attempt before a redo (WHERE Bucket IN UNNEST(all 256) AND Epoch =
-- @e), and to list an epoch's changes. Led by Bucket, not Epoch, so the
-- index entries of one epoch spread over 256 ranges instead of piling onto
-- the index's tail.
CREATE INDEX LeafRecordsByEpoch ON LeafRecords (Bucket, Epoch);

-- TreeNodes: the versioned Merkle prefix tree (tree package). Only branch
-- points and collapsed leaves are stored, one row per (position, version
-- that changed it), plus deletion markers.
--
-- Committed versions: one marker row per committed version at the reserved
-- Position 0xff (32 times) followed by depth 0x0000, whose Node is the
-- version's 32-byte root. That Position is not a tree position (a depth-0
-- position has an all-zero prefix), so no node can collide with it; the
-- newest marker (the first row at that Position, Version DESC) is the tree's
-- latest committed version. The epoch commit writes the marker of version N
-- in the transaction that writes Epochs row N, so tree version N becomes
-- visible exactly when epoch N does; no marker means only version 0 (the
-- empty tree) is committed. Written by the epoch function in
-- chunks before the epoch commits; read by the epoch function, lookup and
-- history at a committed version v: per position, the first row with
-- Version <= v (one seek thanks to Version DESC). Rows with Version above
-- the newest committed epoch are invisible; a failed attempt's rows are
-- either rewritten identically by the redo or removed through
-- TreeNodesByVersion before it. A node insert costs about 5 mutations (3
-- columns, the stored Bucket, the index entry): at most ~15,000 nodes per
-- transaction.
CREATE TABLE TreeNodes (
  -- 32-byte key prefix (the first Depth bits of the key, the rest zero)
  -- followed by Depth as a big-endian uint16 (0..256). Prefix first: the
  -- positions an epoch writes are spread over the whole key space.
  Position BYTES(34) NOT NULL,
  -- Tree version = epoch number that wrote the node.
  Version INT64 NOT NULL,
  -- Canonical node encoding (tree package): internal node with its two
  -- child hashes, collapsed leaf, or deletion marker.
  Node BYTES(MAX) NOT NULL,
  -- First byte of Position, for TreeNodesByVersion.
  Bucket BYTES(1) AS (SUBSTR(Position, 1, 1)) STORED,
  CONSTRAINT TreeNodesPositionLength CHECK (BYTE_LENGTH(Position) = 34),
  CONSTRAINT TreeNodesDepthRange CHECK (SUBSTR(Position, 33, 2) <= CODE_POINTS_TO_BYTES([1, 0])),
  CONSTRAINT TreeNodesVersionNonNegative CHECK (Version >= 0),
) PRIMARY KEY (Position, Version DESC);

-- TreeNodesByVersion finds every node one version wrote (Tree Store.Discard
-- of a failed attempt), led by Bucket for the same reason as
-- LeafRecordsByEpoch.
CREATE INDEX TreeNodesByVersion ON TreeNodes (Bucket, Version);

-- Epochs: one row per committed epoch; its commit IS the epoch commit, the
-- moment everything written for the epoch becomes visible. Written once by
-- the epoch function (fenced by its lease token) in a transaction that also
-- writes EpochRejections and EpochLogNodes; PublishedAt is set later by the
-- publisher. Read by everything that serves proofs, by the feed and by the
-- ratify function. The newest committed epoch is the first row.
--
-- Key: the epoch number increases monotonically, normally a hot-spot
-- pattern, but this table takes about one insert and one update per epoch
-- and a few cosignature writes (the epoch interval is at least a second), far
-- below what one split serves. DESC makes "the newest epoch" the first row.
CREATE TABLE Epochs (
  -- Epoch number, as the statemachine numbers them: also the tree version
  -- the epoch committed.
  Epoch INT64 NOT NULL,
  -- The canonical epoch head (realm, epoch, time, tree root, number of
  -- updates, update root): the leaf of the epoch log.
  Head BYTES(MAX) NOT NULL,
  -- The tree root after this epoch (also inside Head; a column so the tree
  -- store can answer Latest without decoding the head).
  TreeRoot BYTES(32) NOT NULL,
  -- The signed checkpoint note of the epoch log after this head, with the
  -- keyserver's signature only (cosignatures are in Cosignatures).
  Checkpoint BYTES(MAX) NOT NULL,
  -- The inclusion proof of Head (leaf Epoch) in the epoch log of size
  -- Epoch+1: its hashes (32 bytes each, lowest level first) concatenated;
  -- empty for epoch 0. Served with every lookup proof. Always written by the
  -- epoch commit (nullable only so that the column could be added).
  HeadProof BYTES(MAX),
  -- The epoch time chosen by the attempt (also inside Head).
  EpochTime TIMESTAMP NOT NULL,
  -- The log cut: this epoch holds the Log rows with
  -- PrevCutTs < CommitTs <= CutTs. PrevCutTs is NULL for the first epochs
  -- (the log's beginning): the genesis epoch 0, whose CutTs is the smallest
  -- timestamp 0001-01-01T00:00:00Z (it holds no rows), and epoch 1.
  CutTs TIMESTAMP NOT NULL,
  PrevCutTs TIMESTAMP,
  -- Number of log rows in the cut, and how many of them were rejected.
  Updates INT64 NOT NULL,
  Rejected INT64 NOT NULL,
  -- Commit timestamp of the epoch commit.
  CommittedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  -- The outbox: NULL until the epoch bundle has been published to the
  -- Pub/Sub topic; then the commit timestamp of the transaction recording
  -- it. Publication is in epoch order, so the unpublished epochs are always
  -- the newest rows.
  PublishedAt TIMESTAMP OPTIONS (allow_commit_timestamp = true),
  CONSTRAINT EpochsEpochNonNegative CHECK (Epoch >= 0),
  CONSTRAINT EpochsTreeRootLength CHECK (BYTE_LENGTH(TreeRoot) = 32),
  CONSTRAINT EpochsCounts CHECK (Updates >= 0 AND Rejected >= 0 AND Rejected <= Updates),
  CONSTRAINT EpochsCutOrder CHECK (PrevCutTs IS NULL OR PrevCutTs < CutTs),
) PRIMARY KEY (Epoch DESC);

-- EpochAttempts: the durable cut record of an epoch in progress, written by
-- the epoch function before it writes anything else for the epoch, so that a
-- crashed attempt is redone with exactly the same inputs (same cut, same
-- epoch time: the same nodes, records and head). Each new attempt at the same
-- epoch increments Attempts and takes over LeaseToken. Kept after the epoch
-- commits (an audit trail of retries); one row per epoch, like Epochs.
CREATE TABLE EpochAttempts (
  Epoch INT64 NOT NULL,
  -- The strong-read timestamp the log was cut at, and the previous epoch's
  -- cut (NULL for the first epoch).
  CutTs TIMESTAMP NOT NULL,
  PrevCutTs TIMESTAMP,
  -- The epoch time put into the head, chosen once.
  EpochTime TIMESTAMP NOT NULL,
  -- Number of Log rows in the cut, counted when cutting; a redo that reads a
  -- different number refuses to continue.
  Updates INT64 NOT NULL,
  -- Fencing token of the lease held by the newest attempt (Leases.Token):
  -- the epoch commit checks it is still the lease's token.
  LeaseToken INT64 NOT NULL,
  -- Number of attempts so far (1 for the first).
  Attempts INT64 NOT NULL,
  -- Commit timestamps of the first and of the newest attempt.
  StartedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  LastAttemptAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  CONSTRAINT EpochAttemptsEpochNonNegative CHECK (Epoch >= 0),
  CONSTRAINT EpochAttemptsCutOrder CHECK (PrevCutTs IS NULL OR PrevCutTs < CutTs),
  CONSTRAINT EpochAttemptsUpdates CHECK (Updates >= 0),
  CONSTRAINT EpochAttemptsCount CHECK (Attempts >= 1),
) PRIMARY KEY (Epoch DESC);

-- EpochRejections: the updates of an epoch that the statemachine rejected,
-- with the reason, so that a receipt can be answered ("rejected in epoch N:
-- wrong version"). Written in the epoch's commit transaction (the parent row
-- must exist), so the epoch function bounds an epoch's size such that even an
-- epoch whose every update is rejected fits: a row costs 6 mutations, so at
-- most 12,000 updates per epoch keep the commit near 72,300 mutations
-- (rejections, the Epochs row, at most 64 EpochLogNodes rows, the lease).
CREATE TABLE EpochRejections (
  Epoch INT64 NOT NULL,
  -- Index of the update in the epoch's ordered updates (0-based), as in the
  -- update root that the head commits to.
  Position INT64 NOT NULL,
  -- Key of the rejected Log row (what the update function's receipt names).
  LogShard INT64 NOT NULL,
  LogCommitTs TIMESTAMP NOT NULL,
  LogSeq BYTES(16) NOT NULL,
  -- The statemachine's reason (its error text, stable per reason).
  Reason STRING(MAX) NOT NULL,
  CONSTRAINT EpochRejectionsPosition CHECK (Position >= 0),
  CONSTRAINT EpochRejectionsLogShardRange CHECK (LogShard >= 0 AND LogShard <= 255),
  CONSTRAINT EpochRejectionsLogSeqLength CHECK (BYTE_LENGTH(LogSeq) = 16),
) PRIMARY KEY (Epoch DESC, Position),
  INTERLEAVE IN PARENT Epochs;

-- Cosignatures: verifier co-signatures on an epoch's checkpoint (C2SP
-- tlog-cosignature). Written by the ratify function after checking the
-- signature against the realm's verifier keys; read by lookup (which serves
-- the newest epoch meeting the client's quorum), checkpoint and update with
-- wait. A verifier that signs again replaces its row.
CREATE TABLE Cosignatures (
  Epoch INT64 NOT NULL,
  -- The verifier's note key name as in the realm config.
  Verifier STRING(256) NOT NULL,
  -- The note signature as it appears base64-decoded on its signature line:
  -- 4-byte key hash || signature (for cosignature/v1: 8-byte timestamp ||
  -- 64-byte Ed25519 signature).
  Signature BYTES(MAX) NOT NULL,
  -- Commit timestamp of the transaction that stored it.
  ReceivedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
) PRIMARY KEY (Epoch DESC, Verifier),
  INTERLEAVE IN PARENT Epochs;

-- EpochLogNodes: the RFC 6962 Merkle tree over the epoch heads, stored as
-- its perfect-subtree hashes addressed like transparency-dev/merkle
-- compact.NodeID (Level, Index): level 0 holds the leaf hashes, level l
-- index i the root of leaves [i*2^l, (i+1)*2^l). Written by the epoch function
-- in the epoch commit (the few nodes the new head completes); never changed.
-- Read to build inclusion and consistency proofs. One insert per level per
-- epoch, so the monotonic Idx of each level is no hot spot.
CREATE TABLE EpochLogNodes (
  Level INT64 NOT NULL,
  Idx INT64 NOT NULL,
  -- The node hash (HASH is a reserved word, hence the longer name).
  NodeHash BYTES(32) NOT NULL,
  CONSTRAINT EpochLogNodesLevelRange CHECK (Level >= 0 AND Level <= 63),
  CONSTRAINT EpochLogNodesIdxNonNegative CHECK (Idx >= 0),
  CONSTRAINT EpochLogNodesHashLength CHECK (BYTE_LENGTH(NodeHash) = 32),
) PRIMARY KEY (Level, Idx);

-- Leases: leader leases. The epoch function holds the lease named "epoch"
-- while it works, so that overlapping scheduler runs never produce two
-- different epoch N. Taking the lease (free, or expired as judged by the
-- taking transaction's Spanner read time) increments Token: the fencing
-- token that every durable epoch write carries and the epoch commit checks.
CREATE TABLE Leases (
  Name STRING(64) NOT NULL,
  -- Who holds it (function instance id, for logs and debugging).
  Holder STRING(256) NOT NULL,
  -- Fencing token: strictly increasing over the lease's life.
  Token INT64 NOT NULL,
  -- The lease is free after this time.
  ExpiresAt TIMESTAMP NOT NULL,
  -- Commit timestamp of the last take or renewal.
  RenewedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  CONSTRAINT LeasesTokenPositive CHECK (Token >= 1),
) PRIMARY KEY (Name);

-- Conifer's Spanner fine-grained access control: database roles and their
-- privileges, appended after schema.sql to the database's DDL by Terraform
-- (terraform/spanner.tf). Kept apart from schema.sql because the Cloud
-- Spanner emulator rejects CREATE ROLE and GRANT ("Unsupported ddl
-- statement"), so the tests and the local stack apply schema.sql alone and
-- run without access control. Same file rules as schema.sql (infra.SplitDDL).
--
-- Spanner IAM is per database: roles/spanner.databaseUser would let every
-- writer write every table. Instead each writing function's service account
-- is a fine-grained access control user (roles/spanner.fineGrainedAccessUser)
-- allowed to assume exactly one of these roles
-- (roles/spanner.databaseRoleUser with an IAM condition on the role name),
-- and names it when it opens its client (spanner.ClientConfig.DatabaseRole,
-- from the CONIFER_SPANNER_DATABASE_ROLE variable). Lookup, history and
-- checkpoint are plain readers (roles/spanner.databaseReader).
--
-- What the roles guarantee, whatever the code does:
--   * Only the update function appends to Log, and nobody can change or
--     delete a Log row: the log is append-only.
--   * Only the update function sees or erases profiles and openings; the
--     epoch, ratify and feed functions cannot read them.
--   * Only the epoch function writes the tree, leaf records, epochs and the
--     epoch log; ratify can add cosignatures and nothing else.

-- conifer_update: the update function. Appends to Log, moves Users, stores
-- and erases Profiles; reads what it needs to validate an update and to
-- answer with a proof when the caller waits.
CREATE ROLE conifer_update;
GRANT SELECT ON TABLE Log, Users, Profiles, LeafRecords, TreeNodes, Epochs, EpochRejections, Cosignatures, EpochLogNodes TO ROLE conifer_update;
GRANT INSERT ON TABLE Log TO ROLE conifer_update;
GRANT INSERT, UPDATE ON TABLE Users TO ROLE conifer_update;
GRANT INSERT, UPDATE, DELETE ON TABLE Profiles TO ROLE conifer_update;

-- conifer_epoch: the epoch function. Reads the log, writes everything an
-- epoch produces, discards the rows of a failed attempt, holds the lease,
-- and may rewind a Users row whose update was rejected. Cannot read
-- Profiles, cannot write Log or Cosignatures.
CREATE ROLE conifer_epoch;
GRANT SELECT ON TABLE Log, Users, LeafRecords, TreeNodes, Epochs, EpochAttempts, EpochRejections, EpochLogNodes, Leases TO ROLE conifer_epoch;
GRANT UPDATE ON TABLE Users TO ROLE conifer_epoch;
GRANT INSERT, UPDATE, DELETE ON TABLE LeafRecords, TreeNodes, EpochRejections TO ROLE conifer_epoch;
GRANT INSERT, UPDATE ON TABLE Epochs, EpochAttempts, EpochLogNodes, Leases TO ROLE conifer_epoch;

-- conifer_ratify: the ratify function. Reads epochs and stores verifier
-- cosignatures; cannot touch the log, users, profiles or the tree.
CREATE ROLE conifer_ratify;
GRANT SELECT ON TABLE Epochs, Cosignatures TO ROLE conifer_ratify;
GRANT INSERT, UPDATE ON TABLE Cosignatures TO ROLE conifer_ratify;

-- conifer_feed: the feed function, which serves any epoch's bundle to
-- verifiers: the epoch, its log records, rejections, cosignatures and epoch
-- log nodes. Read-only, and blind to Users, Profiles and the tree.
CREATE ROLE conifer_feed;
GRANT SELECT ON TABLE Log, Epochs, EpochRejections, Cosignatures, EpochLogNodes TO ROLE conifer_feed;

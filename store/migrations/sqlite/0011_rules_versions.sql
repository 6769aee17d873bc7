-- Rules versions (src/rules_versions.rs): every routing configuration published, whole (its
-- city, taxonomy, rules and tests, SLA policies and calendars, as the files' texts in JSON),
-- with who stored it, when, why, and its diff from the version active then. A version is
-- never changed: each row carries a hash over its content and the row before it, as the task
-- histories do, and `hub audit verify` checks the chain. `seq` counts up from 1 with no gaps.
CREATE TABLE rules_versions (
    seq       BIGINT NOT NULL PRIMARY KEY,
    version   TEXT NOT NULL UNIQUE, -- r-…: the digest of the files, what tasks record
    author    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    message   TEXT NOT NULL,
    files     TEXT NOT NULL,
    diff      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- Which version routes: the last row. Publishing and rolling back each add one; every hub
-- process that reads its rules from the store follows it. Chained like the versions.
CREATE TABLE rules_activations (
    seq       BIGINT NOT NULL PRIMARY KEY,
    version   TEXT NOT NULL REFERENCES rules_versions (version),
    action    TEXT NOT NULL, -- publish | rollback
    author    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    message   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

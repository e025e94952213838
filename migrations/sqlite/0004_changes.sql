-- Changes other processes must hear about (crate::state::Change), for the
-- embedded store, which has no LISTEN/NOTIFY: every publisher appends a row
-- ("<origin> <change>"), every running server polls for rows after the last
-- one it saw (crate::replication). Rows older than ten minutes are pruned.
CREATE TABLE changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    payload  TEXT NOT NULL,
    at       BIGINT NOT NULL
);

-- LLM traces (the platform's Weave calls): one row per call (span). A trace
-- is the calls sharing a trace_id; parent_id links a call to its caller.
-- Written and read under exactly the rules of runs (authz::decide).
CREATE TABLE traces (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    project_id         TEXT NOT NULL REFERENCES projects(id),
    trace_id           TEXT NOT NULL,
    parent_id          TEXT,
    op_name            TEXT NOT NULL,
    inputs             TEXT NOT NULL,
    output             TEXT,
    started_at         BIGINT NOT NULL,
    ended_at           BIGINT,
    created_by         TEXT NOT NULL,
    created_by_kind    TEXT NOT NULL,
    attributed_user_id TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX traces_project ON traces(project_id, seq);

-- The caller's X-Request-Id, stored beside fedgate's own request id (which
-- stays in request_id): a caller can no longer choose the id an operator
-- searches the audit log by, and can still correlate with its own logs.
ALTER TABLE audit_events ADD COLUMN client_request_id TEXT NOT NULL DEFAULT '';

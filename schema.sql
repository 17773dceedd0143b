-- hookd schema. Applied by numbered migrations: each section headed by a migration marker line runs once, in
-- order, and PRAGMA user_version records the last one applied. Never edit an applied section;
-- add a new one. Times are unix milliseconds; every table is STRICT.

-- migration: 1

-- Settings hookd keeps for itself, such as the operator token's hash.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Tenant API keys. Only the SHA-256 of the secret part is stored.
CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'viewer')),
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id, id);

CREATE TABLE event_types (
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    category    TEXT,
    description TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT, WITHOUT ROWID;

-- Outgoing endpoints: settings, state, and the running counters behind the stats route.
CREATE TABLE endpoints (
    id                   INTEGER PRIMARY KEY,
    tenant_id            INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    url                  TEXT NOT NULL,
    events               TEXT NOT NULL,              -- JSON array of patterns
    secret               TEXT NOT NULL,
    signature_scheme     TEXT NOT NULL,
    signature_header     TEXT,
    format               TEXT NOT NULL,
    headers              TEXT NOT NULL,              -- JSON object
    retry_schedule       TEXT NOT NULL,              -- JSON array of milliseconds
    disable_after        INTEGER NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    rate_limit           INTEGER,
    ordering             TEXT NOT NULL,
    is_active            INTEGER NOT NULL,
    disabled_at          INTEGER,
    disabled_reason      TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    succeeded            INTEGER NOT NULL DEFAULT 0,
    failed               INTEGER NOT NULL DEFAULT 0,
    pending              INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_delivery_at     INTEGER,
    last_delivery_status TEXT,
    last_response_code   INTEGER
) STRICT;
CREATE INDEX endpoints_by_tenant ON endpoints(tenant_id, id);

-- Secrets replaced by a rotation, still signing until their grace period ends.
CREATE TABLE endpoint_old_secrets (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX endpoint_old_secrets_by_endpoint ON endpoint_old_secrets(endpoint_id, expires_at);

-- One row per published event; the payload is stored once, not per delivery.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,                   -- JSON
    idempotency_key TEXT,
    deliveries      INTEGER NOT NULL,                -- how many endpoints it fanned out to
    created_at      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX events_by_idempotency_key ON events(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_tenant ON events(tenant_id, id);
CREATE INDEX events_by_tenant_type ON events(tenant_id, type, id);

-- One row per event x endpoint. status: 0 pending, 1 succeeded, 2 failed.
-- A claim sets lease_until and moves next_attempt_at to the same instant, so a lease that
-- expires makes the row due again without anyone clearing it.
-- schedule_offset: attempts that do not count against the retry schedule (manual retries,
-- and everything before a recover). A manual retry sets replay_return to the status to go
-- back to if that one attempt fails (0 with resume_at: a pending delivery's schedule resumes).
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id     INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    status          INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2)),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    schedule_offset INTEGER NOT NULL DEFAULT 0,
    replay_return   INTEGER,
    resume_at       INTEGER,
    was_exhausted   INTEGER NOT NULL DEFAULT 0,      -- failed for good at least once
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 0;
CREATE INDEX deliveries_leased ON deliveries(lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, id);
CREATE INDEX deliveries_by_endpoint_status ON deliveries(endpoint_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries(event_id);

-- One row per HTTP attempt.
CREATE TABLE attempts (
    delivery_id   INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    response_code INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT,
    error_message TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, number)
) STRICT, WITHOUT ROWID;

-- migration: 2

-- Incoming webhooks: URLs the world calls. Only the SHA-256 of each token is stored.
CREATE TABLE incoming_hooks (
    id            INTEGER PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    action        TEXT NOT NULL,                     -- JSON: {"type": "publish"|"store", ...}
    verify_scheme TEXT,
    verify_secret TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX incoming_hooks_by_tenant ON incoming_hooks(tenant_id, id);

-- Every call an incoming hook received, accepted or rejected.
CREATE TABLE incoming_requests (
    id           INTEGER PRIMARY KEY,
    hook_id      INTEGER NOT NULL REFERENCES incoming_hooks(id) ON DELETE CASCADE,
    received_at  INTEGER NOT NULL,
    content_type TEXT,
    headers      TEXT NOT NULL,                      -- JSON object of the headers that matter
    body         TEXT,                               -- up to 64 KiB, lossy UTF-8
    status       TEXT NOT NULL CHECK (status IN ('accepted', 'rejected')),
    error        TEXT,
    event_id     INTEGER
) STRICT;
CREATE INDEX incoming_requests_by_hook ON incoming_requests(hook_id, id);

-- The endpoint an integration route manages: at most one per type per tenant.
ALTER TABLE endpoints ADD COLUMN integration TEXT
    CHECK (integration IN ('slack', 'discord', 'webhook'));
CREATE UNIQUE INDEX endpoints_by_integration ON endpoints(tenant_id, integration)
    WHERE integration IS NOT NULL;

-- migration: 3

-- Schedules: digests sent on a cron, once, weekly, or when an event reaches a status.
CREATE TABLE schedules (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    schedule_type     TEXT NOT NULL,
    cron_expression   TEXT,
    trigger_status    TEXT,
    scheduled_at      INTEGER,
    timezone          TEXT NOT NULL,
    format            TEXT NOT NULL,
    delivery_method   TEXT NOT NULL,
    endpoint_id       INTEGER REFERENCES endpoints(id) ON DELETE CASCADE,
    recipients        TEXT,                          -- JSON array, for email delivery
    event_types       TEXT,                          -- JSON array of patterns, or NULL for all
    include_changelog INTEGER NOT NULL DEFAULT 0,
    custom_subject    TEXT,
    custom_message    TEXT,
    status            TEXT NOT NULL,                 -- active | completed
    next_run_at       INTEGER,
    last_run_at       INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX schedules_by_tenant ON schedules(tenant_id, id);
CREATE INDEX schedules_due ON schedules(next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX schedules_on_status ON schedules(tenant_id, trigger_status)
    WHERE schedule_type = 'on_status_change';

-- One row per fire: unique per schedule and slot, so a restart never doubles a run.
CREATE TABLE schedule_runs (
    id           INTEGER PRIMARY KEY,
    schedule_id  INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    slot         INTEGER NOT NULL,
    status       TEXT NOT NULL,                      -- delivered | failed
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    period_start INTEGER NOT NULL,
    period_end   INTEGER NOT NULL,
    event_count  INTEGER NOT NULL,
    delivery_id  INTEGER,
    error        TEXT,
    -- Email runs: the document to send, and the send attempts (status 'sending' until done).
    subject         TEXT,
    document        BLOB,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    email_result    TEXT,
    UNIQUE (schedule_id, slot)
) STRICT;
CREATE INDEX schedule_runs_sending ON schedule_runs(next_attempt_at) WHERE status = 'sending';

-- migration: 4

-- The fence of the current lease: a token drawn for each claim that is never handed out
-- twice, even when the claim's transaction rolls back (the attempt counter does roll back).
ALTER TABLE deliveries ADD COLUMN lease INTEGER;

-- A run covers the tenant's events after the newest one the previous run saw: bounding a
-- period by event id (not by wall-clock time) means an event that commits while a run reads
-- its period lands in the next run, never lost. Existing schedules start where their last
-- run (or their creation) left off.
ALTER TABLE schedules ADD COLUMN last_event_id INTEGER NOT NULL DEFAULT 0;
UPDATE schedules SET last_event_id = (
    SELECT coalesce(max(ev.id), 0) FROM events ev
    WHERE ev.tenant_id = schedules.tenant_id
      AND ev.created_at < coalesce(schedules.last_run_at, schedules.created_at));

-- migration: 5

-- How many rows each long list holds, per block of 65,536 ids: deliveries per endpoint and
-- status, events per tenant and type, incoming requests per hook, runs per schedule. A page
-- deep in a list finds its block by adding these up, then steps through one block only. They
-- are kept exact in the same transaction that changes a list.
-- list: 1 deliveries (owner endpoint, part status), 2 events (owner tenant, part type),
-- 3 incoming requests (owner hook), 4 schedule runs (owner schedule); part '' when none.
CREATE TABLE list_blocks (
    list  INTEGER NOT NULL,
    owner INTEGER NOT NULL,
    part  TEXT NOT NULL,
    block INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (list, owner, part, block)
) STRICT, WITHOUT ROWID;

-- Rows added to deliveries and events, and a delivery's status changing, are counted by the
-- writer (one write per block per batch, see src/store/paging.rs); deletes, wherever they come
-- from (retention, a deleted endpoint, tenant or hook), by these triggers. Every change adds
-- to the count, so the two never depend on which ran first.
CREATE TRIGGER deliveries_uncounted AFTER DELETE ON deliveries BEGIN
    INSERT INTO list_blocks VALUES (1, old.endpoint_id, CAST(old.status AS TEXT), old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER events_uncounted AFTER DELETE ON events BEGIN
    INSERT INTO list_blocks VALUES (2, old.tenant_id, old.type, old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER incoming_requests_counted AFTER INSERT ON incoming_requests BEGIN
    INSERT INTO list_blocks VALUES (3, new.hook_id, '', new.id >> 16, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER incoming_requests_uncounted AFTER DELETE ON incoming_requests BEGIN
    INSERT INTO list_blocks VALUES (3, old.hook_id, '', old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE TRIGGER schedule_runs_counted AFTER INSERT ON schedule_runs BEGIN
    INSERT INTO list_blocks VALUES (4, new.schedule_id, '', new.id >> 16, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER schedule_runs_uncounted AFTER DELETE ON schedule_runs BEGIN
    INSERT INTO list_blocks VALUES (4, old.schedule_id, '', old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE INDEX schedule_runs_by_schedule ON schedule_runs(schedule_id, id);

INSERT INTO list_blocks
    SELECT 1, endpoint_id, CAST(status AS TEXT), id >> 16, count(*) FROM deliveries
    GROUP BY endpoint_id, status, id >> 16;
INSERT INTO list_blocks
    SELECT 2, tenant_id, type, id >> 16, count(*) FROM events GROUP BY tenant_id, type, id >> 16;
INSERT INTO list_blocks
    SELECT 3, hook_id, '', id >> 16, count(*) FROM incoming_requests GROUP BY hook_id, id >> 16;
INSERT INTO list_blocks
    SELECT 4, schedule_id, '', id >> 16, count(*) FROM schedule_runs
    GROUP BY schedule_id, id >> 16;

-- migration: 6

-- Leases are released at start through the due index (only pending rows hold them), so no
-- index on the lease: every claim and every result no longer updates one.
DROP INDEX deliveries_leased;

-- migration: 7

-- Portal links: tokens a tenant admin hands its own customer, opening the dashboard signed in
-- to the tenant with a role, until they expire or are deleted. Stored hashed, like keys.
CREATE TABLE portal_links (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX portal_links_by_tenant ON portal_links(tenant_id, id);

-- migration: 8

-- An endpoint's payload filter: conditions (JSON) an event must meet to be delivered to it.
ALTER TABLE endpoints ADD COLUMN filter TEXT;

-- migration: 9

-- Channels (a board, a project): an event may carry some, an endpoint may listen to some.
-- JSON arrays of names; NULL for none.
ALTER TABLE events ADD COLUMN channels TEXT;
ALTER TABLE endpoints ADD COLUMN channels TEXT;

-- migration: 10

-- Plans: feature switches and limits the operator sets per tenant (NULL limit: none), and the
-- events each tenant published per UTC day (`day`: days since the Unix epoch), counted in the
-- same commit as the events themselves.
ALTER TABLE tenants ADD COLUMN feature_incoming INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN feature_integrations INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN feature_schedules INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN limit_endpoints INTEGER;
ALTER TABLE tenants ADD COLUMN limit_events_per_day INTEGER;
CREATE TABLE tenant_usage (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day       INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day)
) STRICT, WITHOUT ROWID;

-- migration: 11

-- Endpoint credentials, sealed with the credentials key kept outside the database
-- (`src/sealing.rs`): how deliveries authenticate (HTTP Basic, OAuth2), and the client
-- certificate presented to the endpoint's TLS server. NULL for none.
ALTER TABLE endpoints ADD COLUMN auth TEXT;
ALTER TABLE endpoints ADD COLUMN client_certificate TEXT;

-- migration: 12

-- Ids are never handed out twice, whatever is deleted: every table whose id is public (a
-- `webhook-id` receivers de-duplicate on, a `dlv_` in the log) becomes AUTOINCREMENT, so
-- SQLite picks ids past the highest ever used (`sqlite_sequence`), not past the highest left.
-- A table cannot be altered into AUTOINCREMENT: src/store/migrate.rs rebuilds each one (rows,
-- indexes and triggers kept) in this migration's transaction.

-- migration: 13

-- An endpoint whose URL is a credential (Slack, Discord: the path holds the token): the URL
-- sealed with the credentials key, `url` keeping only its origin. NULL for the others.
ALTER TABLE endpoints ADD COLUMN url_sealed TEXT;

-- migration: 14

-- Each endpoint's attempts per hour and latency bucket (`src/model/series.rs`), counted by the
-- ledger in the commit that records them, so a chart of the last day or week reads at most
-- 8 × 24 × 12 small rows per endpoint and never the attempts. Housekeeping keeps 8 days.
CREATE TABLE endpoint_hours (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    hour        INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    succeeded   INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, hour, bucket)
) STRICT, WITHOUT ROWID;

-- migration: 15

-- Endpoints' counters as each hookd process sharing a PostgreSQL database adds to them, one row
-- per endpoint and process (`writer`, its `hookd_processes` id), so that processes recording
-- results for the same endpoint never wait on each other's rows. An endpoint's counters are its
-- row's plus the sum of these (the latest result: the newest of them); housekeeping folds the
-- rows of processes that are gone into the endpoint's. SQLite's one writer counts on the
-- endpoint's row itself, so here the table stays empty (`hookd copy` folds what it brings).
CREATE TABLE endpoint_counts (
    endpoint_id          INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    writer               INTEGER NOT NULL,
    succeeded            INTEGER NOT NULL DEFAULT 0,
    failed               INTEGER NOT NULL DEFAULT 0,
    pending              INTEGER NOT NULL DEFAULT 0,
    last_delivery_at     INTEGER,
    last_delivery_status TEXT,
    last_response_code   INTEGER,
    PRIMARY KEY (endpoint_id, writer)
) STRICT, WITHOUT ROWID;

-- migration: 16

-- The other counts every process bumps (list blocks, attempts per hour, events per day) get a
-- `writer` too, as `endpoint_counts` has (migration 15): on PostgreSQL each process adds to
-- rows of its own (its `hookd_processes` id) and reads add them up; what the database counts
-- itself (the triggers) and SQLite's one writer use writer 0. Housekeeping folds the rows of
-- processes that are gone into writer 0 (into SQLite, `hookd copy` folds what it brings). A
-- key cannot be altered: each table is made again.
DROP TRIGGER deliveries_uncounted;
DROP TRIGGER events_uncounted;
DROP TRIGGER incoming_requests_counted;
DROP TRIGGER incoming_requests_uncounted;
DROP TRIGGER schedule_runs_counted;
DROP TRIGGER schedule_runs_uncounted;
CREATE TABLE list_blocks_by_writer (
    list   INTEGER NOT NULL,
    owner  INTEGER NOT NULL,
    part   TEXT NOT NULL,
    block  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    writer INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (list, owner, part, block, writer)
) STRICT, WITHOUT ROWID;
INSERT INTO list_blocks_by_writer (list, owner, part, block, n)
    SELECT list, owner, part, block, n FROM list_blocks;
DROP TABLE list_blocks;
ALTER TABLE list_blocks_by_writer RENAME TO list_blocks;

CREATE TRIGGER deliveries_uncounted AFTER DELETE ON deliveries BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (1, old.endpoint_id, CAST(old.status AS TEXT), old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER events_uncounted AFTER DELETE ON events BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (2, old.tenant_id, old.type, old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER incoming_requests_counted AFTER INSERT ON incoming_requests BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (3, new.hook_id, '', new.id >> 16, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER incoming_requests_uncounted AFTER DELETE ON incoming_requests BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (3, old.hook_id, '', old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;
CREATE TRIGGER schedule_runs_counted AFTER INSERT ON schedule_runs BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (4, new.schedule_id, '', new.id >> 16, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER schedule_runs_uncounted AFTER DELETE ON schedule_runs BEGIN
    INSERT INTO list_blocks (list, owner, part, block, n)
        VALUES (4, old.schedule_id, '', old.id >> 16, -1)
        ON CONFLICT DO UPDATE SET n = n - 1;
END;

CREATE TABLE endpoint_hours_by_writer (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    hour        INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    succeeded   INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    writer      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour, bucket, writer)
) STRICT, WITHOUT ROWID;
INSERT INTO endpoint_hours_by_writer (endpoint_id, hour, bucket, succeeded, failed)
    SELECT endpoint_id, hour, bucket, succeeded, failed FROM endpoint_hours;
DROP TABLE endpoint_hours;
ALTER TABLE endpoint_hours_by_writer RENAME TO endpoint_hours;

CREATE TABLE tenant_usage_by_writer (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day       INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    writer    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, writer)
) STRICT, WITHOUT ROWID;
INSERT INTO tenant_usage_by_writer (tenant_id, day, events)
    SELECT tenant_id, day, events FROM tenant_usage;
DROP TABLE tenant_usage;
ALTER TABLE tenant_usage_by_writer RENAME TO tenant_usage;

-- migration: 17
-- An event's W3C trace context (the publisher's `traceparent`, as version 00, and its
-- `tracestate`), passed on to every attempt.
ALTER TABLE events ADD COLUMN traceparent TEXT;
ALTER TABLE events ADD COLUMN tracestate TEXT;

-- migration: 18
-- Where an endpoint's deliveries go, when it is not an HTTP URL: a broker's destination as JSON
-- (`{"type": "redis", "stream": …}`), its address in `url`. NULL: HTTP.
ALTER TABLE endpoints ADD COLUMN destination TEXT;

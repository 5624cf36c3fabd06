-- A database as fleets made it before the schema had versions (user_version 0),
-- with one row of each kind. Frozen: never edit; migrations must carry it forward.
CREATE TABLE IF NOT EXISTS sessions (
	id          TEXT PRIMARY KEY,
	label       TEXT NOT NULL,
	theme       TEXT NOT NULL,
	width       INTEGER NOT NULL,
	height      INTEGER NOT NULL,
	desired     TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
	runtime     TEXT NOT NULL,
	snapshot_id TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
	id         TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	goal       TEXT NOT NULL,
	backend    TEXT NOT NULL,
	model      TEXT NOT NULL DEFAULT '',
	max_steps  INTEGER NOT NULL,
	max_usd    REAL NOT NULL DEFAULT 0,
	status     TEXT NOT NULL,
	answer     TEXT NOT NULL DEFAULT '',
	error      TEXT NOT NULL DEFAULT '',
	steps      INTEGER NOT NULL DEFAULT 0,
	cost_usd   REAL NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	ended_at   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_session ON tasks(session_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_running ON tasks(session_id) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS task_steps (
	task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	event   TEXT NOT NULL,
	PRIMARY KEY (task_id, seq)
);
CREATE TABLE IF NOT EXISTS ledger (
	id                 INTEGER PRIMARY KEY,
	day                TEXT NOT NULL,
	at                 TEXT NOT NULL,
	task_id            TEXT NOT NULL,
	session_id         TEXT NOT NULL,
	step               INTEGER NOT NULL,
	model              TEXT NOT NULL,
	input_tokens       INTEGER NOT NULL,
	output_tokens      INTEGER NOT NULL,
	cache_read_tokens  INTEGER NOT NULL,
	cache_write_tokens INTEGER NOT NULL,
	nano_usd           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_day ON ledger(day);
CREATE TABLE IF NOT EXISTS budget_reservations (
	id         INTEGER PRIMARY KEY,
	day        TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	session_id TEXT NOT NULL,
	nano_usd   INTEGER NOT NULL,
	created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
	id         TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	runtime    TEXT NOT NULL,
	created_at TEXT NOT NULL,
	size       INTEGER NOT NULL,
	sha256     TEXT NOT NULL,
	files      INTEGER NOT NULL,
	image      TEXT NOT NULL DEFAULT ''
);

INSERT INTO sessions VALUES ('sess_old','alice','graphite',1280,720,'running','local','', '2026-11-20T10:00:00Z','2026-11-20T10:00:00Z');
INSERT INTO tasks (id, session_id, goal, backend, model, max_steps, max_usd, status, answer, steps, cost_usd, created_at, ended_at)
  VALUES ('task_old','sess_old','list my files','scripted','',10,0,'succeeded','done',2,0,'2026-11-20T10:01:00Z','2026-11-20T10:02:00Z');
INSERT INTO ledger VALUES (1,'2026-11-20','2026-11-20T10:01:30Z','task_old','sess_old',1,'claude-sonnet-4-5',1000,200,0,0,6000000);
INSERT INTO snapshots VALUES ('snap_old','sess_old','local','2026-11-20T10:03:00Z',1234,'00ff',3,'');

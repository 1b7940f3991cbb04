CREATE TABLE hosts (
	id TEXT PRIMARY KEY,
	name TEXT NOT NULL,
	kernel_release TEXT NOT NULL DEFAULT '',
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	last_boot BIGINT NOT NULL DEFAULT 0,
	last_panic BIGINT NOT NULL DEFAULT 0,
	reports BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE reports (
	id BIGSERIAL PRIMARY KEY,
	rkey TEXT NOT NULL UNIQUE,
	host TEXT NOT NULL,
	received BIGINT NOT NULL,
	kind TEXT NOT NULL,
	title TEXT NOT NULL,
	signature TEXT NOT NULL,
	kernel_release TEXT NOT NULL DEFAULT '',
	corrupted BIGINT NOT NULL DEFAULT 0,
	panicked BIGINT NOT NULL DEFAULT 0,
	text TEXT NOT NULL,
	context TEXT NOT NULL,
	parsed TEXT NOT NULL
);
CREATE INDEX reports_host ON reports (host, id);
CREATE INDEX reports_signature ON reports (signature, received);
CREATE TABLE crash_groups (
	signature TEXT PRIMARY KEY,
	title TEXT NOT NULL,
	kind TEXT NOT NULL,
	count BIGINT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL
);
CREATE INDEX crash_groups_last_seen ON crash_groups (last_seen);
CREATE TABLE group_hosts (
	signature TEXT NOT NULL,
	host TEXT NOT NULL,
	PRIMARY KEY (signature, host)
);
CREATE TABLE group_releases (
	signature TEXT NOT NULL,
	kernel_release TEXT NOT NULL,
	PRIMARY KEY (signature, kernel_release)
);

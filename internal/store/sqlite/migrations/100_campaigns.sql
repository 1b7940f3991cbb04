CREATE TABLE campaigns (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	kind TEXT NOT NULL,
	host TEXT NOT NULL,
	load_cmd TEXT NOT NULL,
	signature TEXT NOT NULL DEFAULT '',
	started INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	status TEXT NOT NULL,
	result TEXT NOT NULL
);
CREATE INDEX campaigns_host ON campaigns (host, id);
CREATE TABLE campaign_runs (
	campaign INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
	n INTEGER NOT NULL,
	started INTEGER NOT NULL,
	seconds DOUBLE PRECISION NOT NULL,
	outcome TEXT NOT NULL,
	report INTEGER NOT NULL DEFAULT 0,
	signature TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (campaign, n)
);

CREATE TABLE campaigns (
	id BIGSERIAL PRIMARY KEY,
	kind TEXT NOT NULL,
	host TEXT NOT NULL,
	load_cmd TEXT NOT NULL,
	signature TEXT NOT NULL DEFAULT '',
	started BIGINT NOT NULL,
	updated BIGINT NOT NULL,
	status TEXT NOT NULL,
	result TEXT NOT NULL
);
CREATE INDEX campaigns_host ON campaigns (host, id);
CREATE TABLE campaign_runs (
	campaign BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
	n BIGINT NOT NULL,
	started BIGINT NOT NULL,
	seconds DOUBLE PRECISION NOT NULL,
	outcome TEXT NOT NULL,
	report BIGINT NOT NULL DEFAULT 0,
	signature TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (campaign, n)
);

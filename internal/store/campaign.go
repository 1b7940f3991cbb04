package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Campaign is one `kcrash repro` measurement or `kcrash soak` of a host, kept with
// the crash reports it watched for.
type Campaign struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"` // "repro" or "soak"
	Host      string    `json:"host"`
	Load      string    `json:"load"`
	Signature string    `json:"signature,omitempty"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	// Status is "running", "done", a soak's verdict or the error that ended it.
	Status string `json:"status"`
	// Result is the command's JSON result (repro --json, soak --json).
	Result []byte `json:"-"`
}

// CampaignRun is one run of a campaign (a soak has one).
type CampaignRun struct {
	N       int       `json:"n"`
	Start   time.Time `json:"start"`
	Seconds float64   `json:"seconds"`
	Outcome string    `json:"outcome"`
	// Report is the id of the report that ended the run (0: none).
	Report    int64  `json:"report,omitempty"`
	Signature string `json:"signature,omitempty"`
}

// Campaigns keeps repro and soak campaigns. The SQL store implements it; it is
// apart from Store so a Store needs nothing of it.
type Campaigns interface {
	// SaveCampaign inserts c (ID 0, which it sets) or updates it.
	SaveCampaign(ctx context.Context, c *Campaign) error
	// SaveCampaignRun stores run r of campaign id, replacing a run of the same N.
	SaveCampaignRun(ctx context.Context, id int64, r CampaignRun) error
	// Campaign returns a campaign and its runs in order.
	Campaign(ctx context.Context, id int64) (*Campaign, []CampaignRun, error)
}

// SaveCampaign implements Campaigns.
func (s *SQL) SaveCampaign(ctx context.Context, c *Campaign) error {
	result := string(c.Result)
	if result == "" {
		result = "{}"
	}
	if c.ID == 0 {
		return s.db.QueryRowContext(ctx, s.q(`INSERT INTO campaigns (kind, host, load_cmd, signature, started, updated, status, result)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			clean(c.Kind), clean(c.Host), clean(c.Load), clean(c.Signature), ms(c.Started), ms(c.Updated), clean(c.Status), clean(result)).Scan(&c.ID)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE campaigns SET signature = ?, updated = ?, status = ?, result = ? WHERE id = ?`),
		clean(c.Signature), ms(c.Updated), clean(c.Status), clean(result), c.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SaveCampaignRun implements Campaigns.
func (s *SQL) SaveCampaignRun(ctx context.Context, id int64, r CampaignRun) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO campaign_runs (campaign, n, started, seconds, outcome, report, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (campaign, n) DO UPDATE SET started = excluded.started, seconds = excluded.seconds,
			outcome = excluded.outcome, report = excluded.report, signature = excluded.signature`),
		id, r.N, ms(r.Start), r.Seconds, clean(r.Outcome), r.Report, clean(r.Signature))
	return err
}

// Campaign implements Campaigns.
func (s *SQL) Campaign(ctx context.Context, id int64) (*Campaign, []CampaignRun, error) {
	c := Campaign{ID: id}
	var started, updated int64
	var result string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT kind, host, load_cmd, signature, started, updated, status, result FROM campaigns WHERE id = ?`), id).
		Scan(&c.Kind, &c.Host, &c.Load, &c.Signature, &started, &updated, &c.Status, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	c.Started, c.Updated, c.Result = fromMS(started), fromMS(updated), []byte(result)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT n, started, seconds, outcome, report, signature FROM campaign_runs WHERE campaign = ? ORDER BY n`), id)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var runs []CampaignRun
	for rows.Next() {
		var r CampaignRun
		var start int64
		if err := rows.Scan(&r.N, &start, &r.Seconds, &r.Outcome, &r.Report, &r.Signature); err != nil {
			return nil, nil, err
		}
		r.Start = fromMS(start)
		runs = append(runs, r)
	}
	return &c, runs, rows.Err()
}

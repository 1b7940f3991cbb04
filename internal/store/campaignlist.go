package store

import "context"

// CampaignQuery selects campaigns, newest first.
type CampaignQuery struct {
	// Signature, when set, keeps the campaigns whose target signature is it or a
	// prefix of it (a campaign may name its crash by a prefix).
	Signature string
	Limit     int // default 100, at most 1000
}

// CampaignLister lists campaigns: the dashboard's list and a crash group's. The
// SQL store implements it.
type CampaignLister interface {
	ListCampaigns(ctx context.Context, q CampaignQuery) ([]Campaign, error)
}

// ListCampaigns implements CampaignLister. The campaigns come without their
// Result (Campaign returns it).
func (s *SQL) ListCampaigns(ctx context.Context, q CampaignQuery) ([]Campaign, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	query := `SELECT id, kind, host, load_cmd, signature, started, updated, status FROM campaigns`
	args := []any{}
	if q.Signature != "" {
		query += ` WHERE signature <> '' AND substr(?, 1, length(signature)) = signature`
		args = append(args, q.Signature)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Campaign
	for rows.Next() {
		var c Campaign
		var started, updated int64
		if err := rows.Scan(&c.ID, &c.Kind, &c.Host, &c.Load, &c.Signature, &started, &updated, &c.Status); err != nil {
			return nil, err
		}
		c.Started, c.Updated = fromMS(started), fromMS(updated)
		out = append(out, c)
	}
	return out, rows.Err()
}

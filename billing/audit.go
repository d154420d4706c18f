package billing

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/i18n"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// The audit log: grants, offline payments, budgets, payouts, Connect accounts and the Stripe mismatches staff
// must settle by hand, each written in the transaction of what it records (writeAudit). Staff read it across
// organisations, newest first.

// AuditEntry is one line of billing's audit log.
type AuditEntry struct {
	ID          string    `json:"id"`
	At          time.Time `json:"at"`
	ActorUserID string    `json:"actor_user_id" doc:"the staff member, or stripe for what a Stripe event revealed"`
	Action      string    `json:"action"`
	Target      string    `json:"target" doc:"what the action was on: a grant, purchase or payout ID, or an organisation"`
	Detail      string    `json:"detail"`
	// ActionDisplay names the action for people (catalogue key audit.billing.<action>).
	ActionDisplay string `json:"action_display" doc:"the action named for people, in the language of Accept-Language (the action itself when no name is catalogued)"`
}

func (AuditEntry) SchemaName() string { return "BillingAuditEntry" }

// Audit lists the audit log newest first, of one action when action is set, limit entries after the cursor
// (a page's next_cursor; empty: from the newest). Staff only: the handler checks.
func (s *Service) Audit(ctx context.Context, action string, limit int, cursor string) ([]AuditEntry, string, error) {
	if action != "" && !slices.Contains(AuditActions, action) {
		var f problem.Fields
		f.AddMsg("action", "invalid", "field.text.one_or_more_of", problem.Args{"Values": strings.Join(AuditActions, ", ")})
		return nil, "", f.Err()
	}
	var after *lineCursor
	if cursor != "" {
		after = &lineCursor{}
		if err := decodeCursor(cursor, after); err != nil {
			return nil, "", err
		}
	}
	rows, err := auditEntries(s.db.WithContext(ctx), action, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		next = encodeCursor(lineCursor{At: last.CreatedAt, ID: last.ID})
	}
	out := make([]AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = AuditEntry{ID: r.ID, At: r.CreatedAt, ActorUserID: r.ActorUserID, Action: r.Action, Target: r.Target, Detail: r.Detail}
	}
	return out, next, nil
}

func (h handler) audit(c *fiber.Ctx) error {
	pg, err := web.PageOf(c)
	if err != nil {
		return err
	}
	items, next, err := h.s.Audit(c.UserContext(), c.Query("action"), pg.Limit, pg.Cursor)
	if err != nil {
		return err
	}
	lang := web.Lang(c)
	for i := range items {
		items[i].ActionDisplay = i18n.AuditAction(lang, "billing", items[i].Action)
	}
	return c.JSON(web.List[AuditEntry]{Items: items, NextCursor: next})
}

package marketplace

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tamarack-ai/tamarack/platform/inbox"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// Queries. Every function takes the *gorm.DB (or transaction) to run on and maps not-found and duplicate
// keys to the service's problems.

func getListing(db *gorm.DB, id string, lock bool) (listingRow, error) {
	var l listingRow
	q := db
	if lock {
		q = sqldb.ForUpdate(db)
	}
	err := q.Where("id = ?", id).Take(&l).Error
	if sqldb.IsNotFound(err) {
		return l, fmt.Errorf("listing %s: %w", id, ErrListingNotFound)
	}
	return l, err
}

// listingBySlug finds a listing of kind by its slug (slugs are unique across kinds).
func listingBySlug(db *gorm.DB, kind, slug string) (listingRow, error) {
	var l listingRow
	err := db.Where("slug = ? AND kind = ?", slug, kind).Take(&l).Error
	if sqldb.IsNotFound(err) {
		return l, fmt.Errorf("listing %s: %w", slug, ErrListingNotFound)
	}
	return l, err
}

func getVersionByNumber(db *gorm.DB, listingID string, n int) (versionRow, error) {
	var v versionRow
	err := db.Where("listing_id = ? AND version = ?", listingID, n).Take(&v).Error
	if sqldb.IsNotFound(err) {
		return v, fmt.Errorf("version %d: %w", n, ErrVersionNotFound)
	}
	return v, err
}

func getVersion(db *gorm.DB, id string) (versionRow, error) {
	var v versionRow
	err := db.Where("id = ?", id).Take(&v).Error
	if sqldb.IsNotFound(err) {
		return v, fmt.Errorf("version %s: %w", id, ErrVersionNotFound)
	}
	return v, err
}

func listVersions(db *gorm.DB, listingID string) ([]versionRow, error) {
	var vs []versionRow
	err := db.Where("listing_id = ?", listingID).Order("version DESC").Find(&vs).Error
	return vs, err
}

func artifactsOf(db *gorm.DB, versionIDs ...string) (map[string][]artifactRow, error) {
	out := map[string][]artifactRow{}
	if len(versionIDs) == 0 {
		return out, nil
	}
	var rows []artifactRow
	if err := db.Where("version_id IN ?", versionIDs).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.VersionID] = append(out[r.VersionID], r)
	}
	return out, nil
}

func orgName(db *gorm.DB, orgID string) string {
	var o orgRow
	if err := db.Where("org_id = ?", orgID).Take(&o).Error; err != nil {
		return ""
	}
	return o.Name
}

func entitled(db *gorm.DB, orgID, listingID string, now time.Time) (bool, error) {
	if orgID == "" {
		return false, nil
	}
	var n int64
	err := db.Model(&entitlementRow{}).
		Where("org_id = ? AND listing_id = ? AND (expires_at IS NULL OR expires_at > ?)", orgID, listingID, now).
		Count(&n).Error
	return n > 0, err
}

func decodeContent(v versionRow) (Content, error) {
	var c Content
	if err := json.Unmarshal([]byte(v.Content), &c); err != nil {
		return c, fmt.Errorf("version %s: content: %w", v.ID, err)
	}
	return c, nil
}

func encodeContent(c Content) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// catalogRow is one published listing in the searchable catalogue: what a search answers (its Score aside)
// and what only the search reads.
type catalogRow struct {
	CatalogItem
	Body       string
	Visibility string
	Filters    string
}

// filterToken is the full-text token standing for one filter value: a letter for the filter, then the
// value's letters and digits ("kmodel", "lapache20"). Values that collide only prune less: the SQL
// predicates still decide.
func filterToken(filter byte, value string) string {
	var b strings.Builder
	b.WriteString("zz")
	b.WriteByte(filter)
	for _, r := range strings.ToLower(value) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func newCatalogRow(l listingRow, v versionRow, c Content, vendorName string, at time.Time) catalogRow {
	tags, _ := json.Marshal(c.Tags)
	body := []string{c.CardMarkdown, strings.Join(c.Tags, " "), vendorName, l.Kind, c.License.SPDX}
	gpu := ""
	switch {
	case c.Model != nil:
		body = append(body, c.Model.Framework, c.Model.Task, c.Model.BaseModel)
	case c.Dataset != nil:
		body = append(body, c.Dataset.Format)
	case c.Compute != nil:
		gpu = c.Compute.GPUModel
		body = append(body, c.Compute.GPUModel, c.Compute.Region)
	}
	return catalogRow{CatalogItem: CatalogItem{ListingID: l.ID, VersionID: v.ID, VendorOrgID: l.VendorOrgID, VendorName: vendorName,
		Kind: l.Kind, Slug: l.Slug, Title: c.Title, Summary: c.Summary, TitleFr: c.TitleFr, SummaryFr: c.SummaryFr,
		Tags: string(tags), License: c.License.SPDX, GPUModel: gpu, Residency: c.Residency,
		CanadianIP: c.CanadianIP, Gated: c.Gated, PriceMinMicro: c.minPrice(), PublishedAt: at.UnixNano()},
		Body: strings.Join(body, "\n"), Visibility: c.Visibility,
		Filters: strings.Join([]string{filterToken('k', l.Kind), filterToken('l', c.License.SPDX),
			filterToken('r', c.Residency), filterToken('g', gpu)}, " ")}
}

// putCatalog inserts or replaces a listing's catalogue entry with its tags and visibility list. The
// engine's full-text index follows (an FTS5 trigger on SQLite, a generated tsvector on Postgres).
func putCatalog(tx *gorm.DB, r catalogRow, tags, visibleTo []string) error {
	err := tx.Exec(`INSERT INTO market_catalog (listing_id, version_id, vendor_org_id, vendor_name, kind, slug, title,
		summary, body, tags, license, gpu_model, residency, canadian_ip, gated, visibility, price_min_micro, published_at, filters, title_fr, summary_fr)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (listing_id) DO UPDATE SET version_id = excluded.version_id, vendor_name = excluded.vendor_name,
		slug = excluded.slug, title = excluded.title, summary = excluded.summary, body = excluded.body,
		tags = excluded.tags, license = excluded.license, gpu_model = excluded.gpu_model,
		residency = excluded.residency, canadian_ip = excluded.canadian_ip, gated = excluded.gated,
		visibility = excluded.visibility, price_min_micro = excluded.price_min_micro, published_at = excluded.published_at,
		filters = excluded.filters, title_fr = excluded.title_fr, summary_fr = excluded.summary_fr`,
		r.ListingID, r.VersionID, r.VendorOrgID, r.VendorName, r.Kind, r.Slug, r.Title, r.Summary, r.Body, r.Tags,
		r.License, r.GPUModel, r.Residency, r.CanadianIP, r.Gated, r.Visibility, r.PriceMinMicro, r.PublishedAt, r.Filters,
		r.TitleFr, r.SummaryFr).Error
	if err != nil {
		return fmt.Errorf("catalogue %s: %w", r.ListingID, err)
	}
	if err := tx.Exec(`DELETE FROM market_catalog_tags WHERE listing_id = ?`, r.ListingID).Error; err != nil {
		return err
	}
	if err := tx.Exec(`DELETE FROM market_catalog_orgs WHERE listing_id = ?`, r.ListingID).Error; err != nil {
		return err
	}
	type tagRow struct{ Tag, ListingID string }
	type visRow struct{ OrgID, ListingID string }
	if len(tags) > 0 {
		rows := make([]tagRow, len(tags))
		for i, t := range tags {
			rows[i] = tagRow{t, r.ListingID}
		}
		if err := tx.Table("market_catalog_tags").Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
			return err
		}
	}
	if r.Visibility == "restricted" && len(visibleTo) > 0 {
		rows := make([]visRow, len(visibleTo))
		for i, o := range visibleTo {
			rows[i] = visRow{o, r.ListingID}
		}
		if err := tx.Table("market_catalog_orgs").Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
			return err
		}
	}
	return nil
}

// dropCatalog removes a listing from the catalogue (suspended, retired).
func dropCatalog(tx *gorm.DB, listingID string) error {
	for _, q := range []string{`DELETE FROM market_catalog WHERE listing_id = ?`,
		`DELETE FROM market_catalog_tags WHERE listing_id = ?`, `DELETE FROM market_catalog_orgs WHERE listing_id = ?`} {
		if err := tx.Exec(q, listingID).Error; err != nil {
			return err
		}
	}
	return nil
}

// processed is the consumers' inbox: each records an event's ID in the transaction of its effect.
var processed = inbox.Table{Name: "market_processed", ID: "event_id", At: "processed_at", Consumer: "consumer"}

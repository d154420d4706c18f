package marketplace

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/sqldb"
)

// searchIndex keeps the in-process catalogue index (index.go) equal to market_catalog. It is built from the
// table on first use (and again when the service starts following listing events), and every change to the
// table is followed by a refresh of the listings it touched: at once after a local write commits, and on every
// replica when the listing's event arrives over NATS (Service.followCatalog). A refresh re-reads the rows, so
// events may arrive late, twice or out of order. Builds and refreshes run one at a time, each reading the table
// then applying what it read, so the last one applied is never older than an earlier one.
//
// Lexemes come from the database's own analysers, so the index matches what SQL matches: on Postgres the stored
// tsvector of each row and to_tsquery for query words; on SQLite the FTS5 index's tokens (fts5vocab) and, for
// single rows and query words, a per-connection temporary FTS5 table with the same tokenizer.
type searchIndex struct {
	db      *gorm.DB
	dialect sqldb.Dialect
	write   sync.Mutex
	cur     atomic.Pointer[catalogIndex]

	wordsMu sync.RWMutex
	words   map[string]wordLex // query word → its analysis, bounded by maxWords
}

// wordLex is one query word's analysis; ok is false when a language turns it into several lexemes (a phrase),
// which the index does not handle: such queries go to SQL.
type wordLex struct {
	w  ixWord
	ok bool
}

const maxWords = 100_000

func newSearchIndex(db *gorm.DB, d sqldb.Dialect) *searchIndex {
	return &searchIndex{db: db, dialect: d, words: map[string]wordLex{}}
}

// ready returns the index, building it on first use.
func (si *searchIndex) ready(ctx context.Context) (*catalogIndex, error) {
	if x := si.cur.Load(); x != nil {
		return x, nil
	}
	si.write.Lock()
	defer si.write.Unlock()
	if x := si.cur.Load(); x != nil {
		return x, nil
	}
	return si.build(ctx)
}

// rebuild reads the whole table again.
func (si *searchIndex) rebuild(ctx context.Context) error {
	si.write.Lock()
	defer si.write.Unlock()
	_, err := si.build(ctx)
	return err
}

func (si *searchIndex) build(ctx context.Context) (*catalogIndex, error) {
	entries, err := si.load(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("catalogue index: %w", err)
	}
	x := newCatalogIndex(entries)
	si.cur.Store(x)
	return x, nil
}

// refresh re-reads the catalogue rows of the listings and applies them (a missing row removes the listing).
// Before the first build there is nothing to refresh: the build reads the table as it is then.
func (si *searchIndex) refresh(ctx context.Context, ids ...string) error {
	si.write.Lock()
	defer si.write.Unlock()
	x := si.cur.Load()
	if x == nil || len(ids) == 0 {
		return nil
	}
	entries, err := si.load(ctx, ids)
	if err != nil {
		return fmt.Errorf("catalogue index refresh: %w", err)
	}
	found := map[string]bool{}
	for _, e := range entries {
		found[e.item.ListingID] = true
	}
	var gone []string
	for _, id := range ids {
		if !found[id] {
			gone = append(gone, id)
		}
	}
	x.upsert(entries, gone)
	return nil
}

// setVendorName applies an organisation's new name to its entries, as the consumer's UPDATE does to the rows.
func (si *searchIndex) setVendorName(orgID, name string) {
	si.write.Lock()
	defer si.write.Unlock()
	if x := si.cur.Load(); x != nil {
		x.setVendorName(orgID, name)
	}
}

type ixRow struct {
	docID int64
	item  CatalogItem
	vis   string
	body  string
	tsv   string
}

// load reads the catalogue rows of ids (all of them when ids is nil) with their visibility lists and lexemes.
func (si *searchIndex) load(ctx context.Context, ids []string) ([]ixEntry, error) {
	var entries []ixEntry
	err := si.db.WithContext(ctx).Connection(func(db *gorm.DB) error {
		extra := "c.body, ''"
		if si.dialect == sqldb.Postgres {
			extra = "'', c.search::text"
		}
		q := `SELECT c.doc_id, ` + itemColumns + `, c.visibility, ` + extra + ` FROM market_catalog c`
		var args []any
		if ids != nil {
			q += ` WHERE c.listing_id IN ?`
			args = append(args, ids)
		}
		rows, err := db.Raw(q, args...).Rows()
		if err != nil {
			return err
		}
		var rs []ixRow
		for rows.Next() {
			var r ixRow
			it := &r.item
			if err := rows.Scan(&r.docID, &it.ListingID, &it.VersionID, &it.VendorOrgID, &it.VendorName, &it.Kind, &it.Slug, &it.Title,
				&it.Summary, &it.Tags, &it.License, &it.GPUModel, &it.Residency, &it.CanadianIP, &it.Gated, &it.PriceMinMicro,
				&it.PublishedAt, &it.TitleFr, &it.SummaryFr, &r.vis, &r.body, &r.tsv); err != nil {
				_ = rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		_ = rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		orgs := map[string][]string{}
		oq, oargs := `SELECT listing_id, org_id FROM market_catalog_orgs`, []any(nil)
		if ids != nil {
			oq += ` WHERE listing_id IN ?`
			oargs = append(oargs, ids)
		}
		orows, err := db.Raw(oq, oargs...).Rows()
		if err != nil {
			return err
		}
		for orows.Next() {
			var l, o string
			if err := orows.Scan(&l, &o); err != nil {
				_ = orows.Close()
				return err
			}
			orgs[l] = append(orgs[l], o)
		}
		_ = orows.Close()
		if err := orows.Err(); err != nil {
			return err
		}
		var terms func(i int) ([]ixTerm, error)
		switch {
		case si.dialect == sqldb.Postgres:
			terms = func(i int) ([]ixTerm, error) { return parseTSVector(rs[i].tsv) }
		case ids == nil:
			byDoc, err := sqliteIndexTerms(db)
			if err != nil {
				return err
			}
			terms = func(i int) ([]ixTerm, error) { return byDoc[rs[i].docID], nil }
		default:
			texts := make([][5]string, len(rs))
			for i, r := range rs {
				texts[i] = [5]string{r.item.Title, r.item.Summary, r.body, r.item.TitleFr, r.item.SummaryFr}
			}
			all, err := sqliteTokenize(db, texts)
			if err != nil {
				return err
			}
			terms = func(i int) ([]ixTerm, error) { return all[i], nil }
		}
		for i, r := range rs {
			ts, err := terms(i)
			if err != nil {
				return fmt.Errorf("listing %s: %w", r.item.ListingID, err)
			}
			entries = append(entries, ixEntry{item: r.item, visibility: r.vis, visibleTo: orgs[r.item.ListingID], terms: ts})
		}
		return nil
	})
	return entries, err
}

// Weighted column groups: titles, summaries, the rest (Postgres weights A, B, C).
func columnGroup(col string) int {
	switch col {
	case "title", "title_fr", "A":
		return 0
	case "summary", "summary_fr", "B":
		return 1
	}
	return 2
}

// parseTSVector reads a tsvector's text form: 'lexeme':1A,5 'other':3C (quotes doubled inside a lexeme,
// backslashes escaped; weight D is not written).
func parseTSVector(s string) ([]ixTerm, error) {
	var out []ixTerm
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		if s[i] != '\'' {
			return nil, fmt.Errorf("tsvector: unexpected %q at %d", s[i], i)
		}
		i++
		var lex strings.Builder
		for {
			if i >= len(s) {
				return nil, fmt.Errorf("tsvector: unterminated lexeme")
			}
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				lex.WriteByte(s[i+1])
				i += 2
				continue
			}
			if c == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					lex.WriteByte('\'')
					i += 2
					continue
				}
				i++
				break
			}
			lex.WriteByte(c)
			i++
		}
		t := ixTerm{lex: lex.String()}
		if i < len(s) && s[i] == ':' {
			i++
			for i < len(s) && s[i] != ' ' {
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					i++
				}
				g := 3 // D: counted with the body
				if i < len(s) && s[i] >= 'A' && s[i] <= 'D' {
					g = int(s[i] - 'A')
					i++
				}
				t.tf[min(g, 2)]++
				if i < len(s) && s[i] == ',' {
					i++
				}
			}
		} else {
			t.tf[2] = 1 // no positions: present once
		}
		out = append(out, t)
	}
	return out, nil
}

// sqliteIndexTerms reads every row's tokens from the FTS5 index (fts5vocab 'instance': one row per token
// occurrence), leaving out the filter tokens.
func sqliteIndexTerms(db *gorm.DB) (map[int64][]ixTerm, error) {
	if err := db.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS temp.market_catalog_vocab USING fts5vocab('main', 'market_catalog_fts', 'instance')`).Error; err != nil {
		return nil, err
	}
	rows, err := db.Raw(`SELECT doc, col, term FROM temp.market_catalog_vocab WHERE col <> 'filters'`).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectTerms(rows.Next, func(doc *int64, col, term *string) error { return rows.Scan(doc, col, term) }, rows.Err)
}

func collectTerms(next func() bool, scan func(doc *int64, col, term *string) error, errf func() error) (map[int64][]ixTerm, error) {
	pos := map[int64]map[string]int{}
	out := map[int64][]ixTerm{}
	var doc int64
	var col, term string
	for next() {
		if err := scan(&doc, &col, &term); err != nil {
			return nil, err
		}
		m := pos[doc]
		if m == nil {
			m = map[string]int{}
			pos[doc] = m
		}
		i, ok := m[term]
		if !ok {
			i = len(out[doc])
			m[term] = i
			out[doc] = append(out[doc], ixTerm{lex: term})
		}
		out[doc][i].tf[columnGroup(col)]++
	}
	return out, errf()
}

// sqliteTokenize runs texts (title, summary, body, title_fr, summary_fr) through FTS5's tokenizer in a
// temporary table of this connection, and returns each one's terms.
func sqliteTokenize(db *gorm.DB, texts [][5]string) ([][]ixTerm, error) {
	for _, q := range []string{
		`CREATE VIRTUAL TABLE IF NOT EXISTS temp.market_tok USING fts5(title, summary, body, title_fr, summary_fr, tokenize='porter unicode61')`,
		`CREATE VIRTUAL TABLE IF NOT EXISTS temp.market_tok_vocab USING fts5vocab('temp', 'market_tok', 'instance')`,
		`DELETE FROM temp.market_tok`,
	} {
		if err := db.Exec(q).Error; err != nil {
			return nil, err
		}
	}
	defer db.Exec(`DELETE FROM temp.market_tok`)
	for i, t := range texts {
		if err := db.Exec(`INSERT INTO temp.market_tok (rowid, title, summary, body, title_fr, summary_fr) VALUES (?, ?, ?, ?, ?, ?)`,
			i+1, t[0], t[1], t[2], t[3], t[4]).Error; err != nil {
			return nil, err
		}
	}
	rows, err := db.Raw(`SELECT doc, col, term FROM temp.market_tok_vocab`).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byDoc, err := collectTerms(rows.Next, func(doc *int64, col, term *string) error { return rows.Scan(doc, col, term) }, rows.Err)
	if err != nil {
		return nil, err
	}
	out := make([][]ixTerm, len(texts))
	for i := range texts {
		out[i] = byDoc[int64(i+1)]
	}
	return out, nil
}

// analyse turns query words into lexemes as the engine's query parser does, remembering each word; ok is false
// when some word is beyond the index (then SQL answers).
func (si *searchIndex) analyse(ctx context.Context, words []string) ([]ixWord, bool, error) {
	got := make([]wordLex, len(words))
	var missing []string
	si.wordsMu.RLock()
	for i, w := range words {
		a, ok := si.words[w]
		if !ok {
			missing = append(missing, w)
		}
		got[i] = a
	}
	si.wordsMu.RUnlock()
	if len(missing) > 0 {
		found, err := si.analyseDB(ctx, missing)
		if err != nil {
			return nil, false, err
		}
		si.wordsMu.Lock()
		if len(si.words)+len(found) > maxWords {
			si.words = map[string]wordLex{}
		}
		for w, a := range found {
			si.words[w] = a
		}
		si.wordsMu.Unlock()
		for i, w := range words {
			if a, ok := found[w]; ok {
				got[i] = a
			}
		}
	}
	out := make([]ixWord, len(words))
	for i, a := range got {
		if !a.ok {
			return nil, false, nil
		}
		out[i] = a.w
	}
	return out, true, nil
}

func (si *searchIndex) analyseDB(ctx context.Context, words []string) (map[string]wordLex, error) {
	out := map[string]wordLex{}
	if si.dialect == sqldb.Postgres {
		for _, w := range words {
			var en, fr string
			if err := si.db.WithContext(ctx).Raw(`SELECT to_tsquery('english', ?)::text, to_tsquery('french', ?)::text`, w, w).
				Row().Scan(&en, &fr); err != nil {
				return nil, err
			}
			a := wordLex{ok: true}
			var ok1, ok2 bool
			a.w.en, ok1 = singleLexeme(en)
			a.w.fr, ok2 = singleLexeme(fr)
			a.ok = ok1 && ok2
			out[w] = a
		}
		return out, nil
	}
	texts := make([][5]string, len(words))
	for i, w := range words {
		texts[i][0] = w
	}
	var terms [][]ixTerm
	err := si.db.WithContext(ctx).Connection(func(db *gorm.DB) error {
		var err error
		terms, err = sqliteTokenize(db, texts)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, w := range words {
		// FTS5 turns a word of several tokens into a phrase, and one of none into nothing to match.
		if len(terms[i]) != 1 || terms[i][0].tf[0] != 1 {
			out[w] = wordLex{}
			continue
		}
		out[w] = wordLex{w: ixWord{en: terms[i][0].lex, fr: terms[i][0].lex}, ok: true}
	}
	return out, nil
}

// singleLexeme reads to_tsquery's text for one word: ” (a stop word) or 'lexeme'; anything else (a phrase of
// several lexemes) is not ok.
func singleLexeme(q string) (string, bool) {
	if q == "" {
		return "", true
	}
	ts, err := parseTSVector(q)
	if err != nil || len(ts) != 1 {
		return "", false
	}
	return ts[0].lex, true
}

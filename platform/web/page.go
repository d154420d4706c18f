package web

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/tamarack-ai/tamarack/platform/problem"
)

// Page is a parsed ?limit=&cursor= pair.
type Page struct {
	Limit  int
	Cursor string // opaque; decode with DecodeCursor
}

// List is every list response: {"items": [...], "next_cursor": "..."}.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Page limits: default 50, at most 200.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// PageOf parses and checks the pagination parameters.
func PageOf(c *fiber.Ctx) (Page, error) {
	p := Page{Limit: DefaultLimit, Cursor: c.Query("cursor")}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			var f problem.Fields
			f.Add("limit", "out_of_range", "must be an integer from 1 to 200")
			return p, f.Err()
		}
		p.Limit = n
	}
	return p, nil
}

// EncodeCursor makes an opaque cursor of v (usually the sort key and ID of the last item).
func EncodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor into v; a tampered cursor is a 400 invalid_cursor.
func DecodeCursor(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return problem.ErrBadCursor
	}
	if err := json.Unmarshal(b, v); err != nil {
		return problem.ErrBadCursor
	}
	return nil
}

// NewList builds a page from up to limit+1 fetched items: the extra one proves there is a next page.
func NewList[T any](items []T, limit int, cursorOf func(last T) any) List[T] {
	l := List[T]{Items: items}
	if l.Items == nil {
		l.Items = []T{}
	}
	if len(items) > limit {
		l.Items = items[:limit]
		l.NextCursor = EncodeCursor(cursorOf(items[limit-1]))
	}
	return l
}

type offsetCursor struct {
	O int `json:"o"`
}

// Slice pages a complete, deterministically ordered list held in memory (aggregates, small catalogues):
// the cursor is the offset of the next item, so it stays valid while the list does not change.
func Slice[T any](items []T, p Page) (List[T], error) {
	off := 0
	if p.Cursor != "" {
		var c offsetCursor
		if err := DecodeCursor(p.Cursor, &c); err != nil || c.O < 0 {
			return List[T]{}, problem.ErrBadCursor
		}
		off = min(c.O, len(items))
	}
	end := min(off+p.Limit, len(items))
	l := List[T]{Items: items[off:end]}
	if l.Items == nil {
		l.Items = []T{}
	}
	if end < len(items) {
		l.NextCursor = EncodeCursor(offsetCursor{O: end})
	}
	return l, nil
}

// PageSlice parses the page parameters of c and pages items with Slice.
func PageSlice[T any](c *fiber.Ctx, items []T) (List[T], error) {
	p, err := PageOf(c)
	if err != nil {
		return List[T]{}, err
	}
	return Slice(items, p)
}

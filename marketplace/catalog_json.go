package marketplace

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The catalogue's answer is the body the platform writes most often, and reflection made up about a fifth of
// a search's CPU (docs/performance.md). appendSearchJSON writes exactly the bytes json.Marshal writes for
// the searchJSON shape (TestSearchJSONMatchesEncoding holds it to that against encoding/json), field by field.

func appendSearchJSON(b []byte, res SearchResult) []byte {
	b = append(b, `{"items":[`...)
	n := len(res.Items)
	if res.scores != nil {
		n = len(res.scores)
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case res.scores != nil:
			b = appendItemTail(append(b, res.bodies[i]...), res.scores[i])
		case res.bodies != nil:
			b = appendItemTail(append(b, res.bodies[i]...), res.Items[i].Score)
		default:
			b = appendCatalogItemJSON(b, res.Items[i])
		}
	}
	b = append(b, ']')
	if res.NextCursor != "" {
		b = append(b, `,"next_cursor":`...)
		b = appendJSONString(b, res.NextCursor)
	}
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, res.Total, 10)
	b = append(b, `,"facets":`...)
	if res.Facets == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		// The names in order, on the stack for the usual six.
		var buf [8]string
		names := buf[:0]
		for name := range res.Facets {
			names = append(names, name)
		}
		slices.Sort(names)
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, name)
			b = append(b, ':')
			vals := res.Facets[name]
			if vals == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '[')
			for j, v := range vals {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"value":`...)
				b = appendJSONString(b, v.Value)
				if v.Label != "" {
					b = append(b, `,"label":`...)
					b = appendJSONString(b, v.Label)
				}
				b = append(b, `,"count":`...)
				b = strconv.AppendInt(b, v.Count, 10)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendCatalogItemJSON writes catalogItemJSON's fields in its order, with its omitempty rules.
func appendCatalogItemJSON(b []byte, it CatalogItem) []byte {
	return appendItemTail(appendItemBody(b, it), it.Score)
}

// appendItemBody writes every field of the item but the score, which alone depends on the query, and leaves
// the object open.
func appendItemBody(b []byte, it CatalogItem) []byte {
	str := func(b []byte, name, v string) []byte {
		b = append(b, name...)
		return appendJSONString(b, v)
	}
	b = str(b, `{"id":`, it.ListingID)
	b = str(b, `,"slug":`, it.Slug)
	b = str(b, `,"kind":`, it.Kind)
	b = str(b, `,"title":`, it.Title)
	b = str(b, `,"summary":`, it.Summary)
	b = str(b, `,"title_fr":`, it.TitleFr)
	b = str(b, `,"summary_fr":`, it.SummaryFr)
	b = str(b, `,"vendor":{"id":`, it.VendorOrgID)
	b = str(b, `,"name":`, it.VendorName)
	b = append(b, `},"tags":[`...)
	for i, t := range it.TagList() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t)
	}
	b = str(b, `],"license":`, it.License)
	if it.GPUModel != "" {
		b = str(b, `,"gpu_model":`, it.GPUModel)
	}
	if it.Residency != "" {
		b = str(b, `,"residency":`, it.Residency)
	}
	b = append(b, `,"canadian_owned_ip":`...)
	b = strconv.AppendBool(b, it.CanadianIP)
	b = append(b, `,"gated":`...)
	b = strconv.AppendBool(b, it.Gated)
	b = append(b, `,"price_from_micro":`...)
	b = strconv.AppendInt(b, it.PriceMinMicro, 10)
	b = append(b, `,"published_at":"`...)
	b = time.Unix(0, it.PublishedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendItemTail closes an item's object, with its score when it has one.
func appendItemTail(b []byte, score float64) []byte {
	if score != 0 {
		b = append(b, `,"score":`...)
		b = appendJSONFloat(b, score)
	}
	return append(b, '}')
}

// appendJSONFloat formats f as encoding/json does: plain decimals, exponents only for the very small and the
// very large, written e-7 rather than e-07.
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString quotes s as encoding/json does with HTML escaping: ", \ and control characters escaped,
// <, > and & as \u003c, \u003e, \u0026, invalid UTF-8 as \ufffd, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

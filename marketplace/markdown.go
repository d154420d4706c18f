package marketplace

import (
	"bytes"
	"regexp"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// The card renderer: CommonMark plus tables and strikethrough, raw HTML omitted by goldmark, then the
// bluemonday UGC policy on the result, so no script, event handler or javascript: URL survives either path.
var (
	md       = goldmark.New(goldmark.WithExtensions(extension.GFM))
	sanitize = bluemonday.UGCPolicy()
	// scriptTag detects what a card must not contain at all: it is refused rather than silently dropped, so a
	// vendor sees why their card is not what they wrote.
	scriptTag = regexp.MustCompile(`(?i)<\s*/?\s*script\b|javascript\s*:|\bon[a-z]+\s*=\s*["']`)
)

// RenderCard turns card Markdown into sanitised HTML.
func RenderCard(src string) string {
	var buf bytes.Buffer
	if err := md.Convert([]byte(src), &buf); err != nil {
		return ""
	}
	return sanitize.Sanitize(buf.String())
}

func hasScript(src string) bool { return scriptTag.MatchString(src) }

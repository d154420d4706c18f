// Package i18n is the server's side of languages: it picks the reader's language from Accept-Language
// (English or French; anything else reads English) and renders messages from the catalogues embedded from
// catalog/en.json and catalog/fr.json, which hold the same keys (a test fails on a key missing from either).
// Messages are go-i18n templates whose values are named placeholders ({{.Limit}}), so a translation may move
// them; a message with a count has plural forms. It knows no domain: callers name messages by key, and the
// problem writer (platform/web) localises problems by their code.
package i18n

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

//go:embed catalog/en.json catalog/fr.json
var files embed.FS

// Languages are the languages the server speaks; the first is the default.
var Languages = []language.Tag{language.English, language.French}

var matcher = language.NewMatcher(Languages)

// Negotiate picks the language of an answer from an Accept-Language header: French when the reader prefers
// it to English, English otherwise (no header, a malformed one, or only languages the server does not speak).
func Negotiate(acceptLanguage string) language.Tag {
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return language.English
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return language.English
	}
	return Languages[i]
}

// Code is the tag's language as Content-Language writes it ("en", "fr").
func Code(tag language.Tag) string {
	base, _ := tag.Base()
	return base.String()
}

// Size is a count of bytes given as a message argument: it is written for people in the message's language
// (KiB, MiB and GiB in English; Ko, Mo and Go in French), as the web UI writes sizes.
type Size int64

// FormatBytes writes n bytes for people in tag's language, in powers of 1024, with at most one decimal.
func FormatBytes(tag language.Tag, n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	sep := "."
	if Code(tag) == "fr" {
		units = []string{"o", "Ko", "Mo", "Go", "To"}
		sep = ","
	}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if i == 0 || strings.HasSuffix(s, ".0") {
		s = strconv.FormatFloat(v, 'f', 0, 64)
	}
	if sep == "," {
		// A French number has a decimal comma and a non-breaking space before its unit.
		return strings.Replace(s, ".", sep, 1) + "\u00a0" + units[i]
	}
	return s + " " + units[i]
}

// Catalog holds the embedded messages of every language.
type Catalog struct {
	bundle     *goi18n.Bundle
	localizers map[string]*goi18n.Localizer
	// english maps each key to its English message, for callers that find a message by its English text.
	english map[string]string
}

// Default returns the catalogue built from the embedded files. The files are checked by this package's
// tests; were they unreadable all the same, the catalogue would be empty and every message would fall back
// to the English text its caller holds.
var Default = sync.OnceValue(func() *Catalog {
	c, err := load()
	if err != nil {
		return &Catalog{bundle: goi18n.NewBundle(language.English), localizers: map[string]*goi18n.Localizer{}, english: map[string]string{}}
	}
	return c
})

func load() (*Catalog, error) {
	b := goi18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	for _, name := range []string{"catalog/en.json", "catalog/fr.json"} {
		if _, err := b.LoadMessageFileFS(files, name); err != nil {
			return nil, fmt.Errorf("load %s: %w", name, err)
		}
	}
	en, err := Flat("en")
	if err != nil {
		return nil, err
	}
	c := &Catalog{bundle: b, localizers: map[string]*goi18n.Localizer{}, english: map[string]string{}}
	for _, t := range Languages {
		c.localizers[Code(t)] = goi18n.NewLocalizer(b, Code(t))
	}
	for k, v := range en {
		if s, ok := v.(string); ok {
			c.english[k] = s
		}
	}
	return c, nil
}

// Flat reads one embedded catalogue as it is written: each key to its message, a string or, for a message
// with plural forms, an object of them.
func Flat(lang string) (map[string]any, error) {
	raw, err := files.ReadFile("catalog/" + lang + ".json")
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("catalog/%s.json: %w", lang, err)
	}
	return m, nil
}

// Has reports whether key is in the catalogue.
func (c *Catalog) Has(key string) bool {
	_, ok := c.Text(language.English, key, nil)
	return ok
}

// Text renders key in tag's language with args (placeholder name to value; an int "Count" picks the plural
// form). ok is false when key is in no catalogue; a key missing from one language only falls back to English.
func (c *Catalog) Text(tag language.Tag, key string, args map[string]any) (string, bool) {
	l, found := c.localizers[Code(tag)]
	if !found {
		l = c.localizers["en"]
		tag = language.English
	}
	if l == nil {
		return "", false
	}
	cfg := &goi18n.LocalizeConfig{MessageID: key, TemplateData: prepare(tag, args)}
	if n, isInt := args["Count"].(int); isInt {
		cfg.PluralCount = n
	}
	s, err := l.Localize(cfg)
	if err != nil || s == "" {
		return "", false
	}
	return s, true
}

// English renders key in English; a key in no catalogue renders as itself, so a mistake shows.
func (c *Catalog) English(key string, args map[string]any) string {
	if s, ok := c.Text(language.English, key, args); ok {
		return s
	}
	return key
}

// KeyOf finds the key under prefix whose English message is exactly text, the first in key order. It lets
// the problem writer translate a fixed text declared in Go (a sentinel's title) by what it says.
func (c *Catalog) KeyOf(prefix, text string) (string, bool) {
	var keys []string
	for k, v := range c.english {
		if v == text && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "", false
	}
	sort.Strings(keys)
	return keys[0], true
}

// AuditAction names an audit action of service for people in tag's language (catalogue key
// audit.<service>.<action>), or returns the action itself when the catalogue has no name for it.
func AuditAction(tag language.Tag, service, action string) string {
	if s, ok := Default().Text(tag, "audit."+service+"."+action, nil); ok {
		return s
	}
	return action
}

// prepare writes the arguments that depend on the language (sizes) for tag.
func prepare(tag language.Tag, args map[string]any) map[string]any {
	if len(args) == 0 {
		return args
	}
	out := make(map[string]any, len(args))
	for k, v := range args {
		if s, ok := v.(Size); ok {
			v = FormatBytes(tag, int64(s))
		}
		out[k] = v
	}
	return out
}

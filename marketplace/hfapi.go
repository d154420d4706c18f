package marketplace

// The Hugging Face Hub download API: the subset of the Hub's HTTP API that huggingface_hub (Python) and
// @huggingface/hub (JavaScript) use to read a repository, so that HF_ENDPOINT=<tamarack> works for downloads.
//
// Mapping (docs/hf-api.md): a repository is a model or dataset listing, named <vendor>/<listing slug>, where
// <vendor> is the vendor organisation's name slugged (the marketplace keeps organisations' names, not slugs;
// identity has none) or the organisation's ID; a revision is a published (or superseded) version: "main" is
// the live one (also "HEAD"), "v<N>" or "<N>" a version number, or the 40-hex sha derived from the version's ID; files are
// the version's artifacts. Who sees a repository is canSee, who downloads a file is mayDownload: the
// marketplace's own rules, unchanged.
//
// Errors are deliberately not RFC 9457 problems: the Hub's clients read the X-Error-Code header (RepoNotFound,
// RevisionNotFound, EntryNotFound, GatedRepo) and an {"error": "..."} body, and raise their own typed errors
// from them. hfFail is the one place that writes them.

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// hfErr is one Hub error: its status, its X-Error-Code (empty: none) and its message.
type hfErr struct {
	status int
	code   string
	msg    string
}

func (e *hfErr) Error() string { return e.msg }

// Hub error codes, as huggingface_hub's hf_raise_for_status reads them.
const (
	hfRepoNotFound     = "RepoNotFound"
	hfRevisionNotFound = "RevisionNotFound"
	hfEntryNotFound    = "EntryNotFound"
	hfGatedRepo        = "GatedRepo"
)

// hfRepoMissing is the answer for a repository the caller may not see: 401 when anonymous (so that clients
// suggest logging in, as the Hub does), 404 otherwise; the same whether it does not exist or is hidden.
func hfRepoMissing(a web.Principal, repo string) error {
	status := http.StatusNotFound
	if !a.Authenticated() {
		status = http.StatusUnauthorized
	}
	return &hfErr{status, hfRepoNotFound, "Repository Not Found for url: " + repo + ". Make sure the repository exists " +
		"and that you are authenticated with a Tamarack API token (Authorization: Bearer <token>)"}
}

// hfFail writes err in the Hub's error format. Anything that is not an hfErr is logged and answered 500.
func (s *Service) hfFail(c *fiber.Ctx, err error) error {
	var he *hfErr
	if !errors.As(err, &he) {
		s.log.Error("hf api", "method", c.Method(), "path", c.Path(), "err", err)
		he = &hfErr{http.StatusInternalServerError, "", "internal error"}
	}
	if he.code != "" {
		c.Set("X-Error-Code", he.code)
	}
	// The message may quote the request's (unescaped) path: only printable ASCII goes into a header.
	c.Set("X-Error-Message", strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, he.msg))
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(he.status).JSON(fiber.Map{"error": he.msg})
}

// HFRoutes mounts the Hub API at the root of r (not under /api/v1: clients build these paths themselves). It
// must be mounted before the UI's fallback, which would otherwise answer /<ns>/<repo>/resolve/... with the SPA.
// authn checks bearer tokens like web.Auth does; a token may carry an "hf_" prefix, which @huggingface/hub
// requires of every token, and which is dropped before authenticating.
func (s *Service) HFRoutes(r fiber.Router, authn web.Authenticator) {
	h := hfHandler{s: s, authn: authn}
	for _, k := range []struct{ plural, kind, resolve string }{
		{"models", KindModel, ""}, {"datasets", KindDataset, "/datasets"},
	} {
		api := "/api/" + k.plural + "/:ns/:repo"
		r.Get(api, h.info(k.kind)) // no revision: main
		r.Get(api+"/revision/:rev", h.info(k.kind))
		r.Get(api+"/tree/:rev", h.tree(k.kind))
		r.Get(api+"/tree/:rev/*", h.tree(k.kind))
		r.Get(k.resolve+"/:ns/:repo/resolve/:rev/*", h.resolve(k.kind))
	}
}

type hfHandler struct {
	s     *Service
	authn web.Authenticator
}

// actor reads the bearer token. A token that is present but invalid is refused (401, no error code), as
// web.Auth does, instead of being treated as anonymous.
func (h hfHandler) actor(c *fiber.Ctx) (web.Principal, error) {
	v := c.Get(fiber.HeaderAuthorization)
	if v == "" {
		return web.Principal{}, nil
	}
	scheme, tok, ok := strings.Cut(v, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return web.Principal{}, &hfErr{http.StatusUnauthorized, "", "Use Authorization: Bearer <Tamarack API token>"}
	}
	tok = strings.TrimPrefix(tok, "hf_")
	p, err := h.authn.Authenticate(c.UserContext(), tok)
	if err != nil {
		var pr *problem.Problem
		if errors.As(err, &pr) && pr.Status == http.StatusUnauthorized {
			return web.Principal{}, &hfErr{http.StatusUnauthorized, "", "Invalid credentials in Authorization header: the token is invalid, expired or revoked"}
		}
		return web.Principal{}, err
	}
	return p, nil
}

// hfRevision is one revision of a repository as the caller may see it.
type hfRevision struct {
	repoID  string // <namespace>/<slug>
	listing listingRow
	version versionRow
	content Content
	files   []artifactRow
}

// hfVersionSHA is the commit-like ID of a version: stable, 40 hex characters, derived from the version's ID
// (a published version never changes).
func hfVersionSHA(versionID string) string {
	sum := sha1.Sum([]byte("tamarack/marketplace/version/" + versionID))
	return hex.EncodeToString(sum[:])
}

// hfNamespace is the vendor part of a repository ID: the vendor organisation's name, slugged, or its ID when
// the name has no letters or digits.
func hfNamespace(db *gorm.DB, vendorOrgID string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(orgName(db, vendorOrgID)) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		default:
			dash = true
		}
	}
	if b.Len() == 0 {
		return vendorOrgID
	}
	return b.String()
}

func hfParam(c *fiber.Ctx, name string) string {
	v := c.Params(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// hfRevisionOf finds the revision rev of the repository ns/name of kind as a sees it.
func (s *Service) hfRevisionOf(ctx context.Context, a web.Principal, kind, ns, name, rev string) (hfRevision, error) {
	db := s.db.WithContext(ctx)
	repoID := ns + "/" + name
	l, err := listingBySlug(db, kind, name)
	if err != nil {
		if errors.Is(err, ErrListingNotFound) {
			return hfRevision{}, hfRepoMissing(a, repoID)
		}
		return hfRevision{}, err
	}
	space := hfNamespace(db, l.VendorOrgID)
	if ns != space && ns != l.VendorOrgID {
		return hfRevision{}, hfRepoMissing(a, repoID)
	}
	if err := s.canSee(db, a, l); err != nil {
		if errors.Is(err, ErrListingNotFound) {
			return hfRevision{}, hfRepoMissing(a, repoID)
		}
		return hfRevision{}, err
	}
	out := hfRevision{repoID: space + "/" + l.Slug, listing: l}
	noRev := &hfErr{http.StatusNotFound, hfRevisionNotFound, "Invalid rev id: " + rev}
	var v versionRow
	switch n, perr := strconv.Atoi(strings.TrimPrefix(rev, "v")); {
	case rev == "main" || rev == "HEAD": // @huggingface/hub's modelInfo asks for HEAD
		if l.PublishedVersionID == "" {
			return hfRevision{}, noRev
		}
		v, err = getVersion(db, l.PublishedVersionID)
	case perr == nil:
		v, err = getVersionByNumber(db, l.ID, n)
	case len(rev) == 40:
		vs, lerr := listVersions(db, l.ID)
		if lerr != nil {
			return hfRevision{}, lerr
		}
		err = ErrVersionNotFound
		for _, c := range vs {
			if hfVersionSHA(c.ID) == strings.ToLower(rev) {
				v, err = c, nil
			}
		}
	default:
		return hfRevision{}, noRev
	}
	if errors.Is(err, ErrVersionNotFound) || err == nil && v.State != StatePublished && v.State != StateSuperseded {
		return hfRevision{}, noRev
	}
	if err != nil {
		return hfRevision{}, err
	}
	if out.content, err = decodeContent(v); err != nil {
		return hfRevision{}, err
	}
	files, err := artifactsOf(db, v.ID)
	if err != nil {
		return hfRevision{}, err
	}
	out.version, out.files = v, files[v.ID]
	return out, nil
}

// hfOpen opens one file of a revision, checked with mayDownload: a repository the caller sees but may not
// download from (no entitlement: a gated listing without approved access, or no order placed) is GatedRepo.
func (s *Service) hfOpen(ctx context.Context, a web.Principal, r hfRevision, file string) (artifactRow, Blob, error) {
	var art *artifactRow
	for i := range r.files {
		if r.files[i].Name == file {
			art = &r.files[i]
		}
	}
	if art == nil {
		return artifactRow{}, nil, &hfErr{http.StatusNotFound, hfEntryNotFound, fmt.Sprintf("%s does not exist in %s at revision %s",
			file, r.repoID, hfVersionSHA(r.version.ID))}
	}
	if err := s.mayDownload(s.db.WithContext(ctx), a, *art); err != nil {
		if !errors.Is(err, ErrArtifactNotFound) {
			return artifactRow{}, nil, err
		}
		status, how := http.StatusForbidden, "order one of its plans"
		if r.content.Gated {
			how = "request access and wait for the vendor's approval"
		}
		if !a.Authenticated() {
			status = http.StatusUnauthorized
		}
		return artifactRow{}, nil, &hfErr{status, hfGatedRepo, fmt.Sprintf("Access to %s is restricted: %s on Tamarack "+
			"(listing %s) first, then authenticate with an API token of your organisation", r.repoID, how, r.listing.ID)}
	}
	b, err := s.blobs.Open(ctx, art.BlobKey)
	if err != nil {
		return artifactRow{}, nil, fmt.Errorf("open artifact %s: %w", art.ID, err)
	}
	return *art, b, nil
}

// JSON shapes, as the Hub writes them (camelCase: the clients' field names, not this platform's style).

type hfLFSJSON struct {
	SHA256      string `json:"sha256,omitempty"`
	OID         string `json:"oid,omitempty"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type hfSiblingJSON struct {
	RFilename string     `json:"rfilename"`
	Size      int64      `json:"size"`
	BlobID    string     `json:"blobId"`
	LFS       *hfLFSJSON `json:"lfs,omitempty"`
}

type hfInfoJSON struct {
	ID           string          `json:"id"`
	InternalID   string          `json:"_id"`
	ModelID      string          `json:"modelId,omitempty"`
	Author       string          `json:"author"`
	SHA          string          `json:"sha"`
	LastModified string          `json:"lastModified" doc:"UTC, milliseconds, as the Hub writes it"`
	CreatedAt    string          `json:"createdAt" doc:"UTC, milliseconds, as the Hub writes it"`
	Private      bool            `json:"private"`
	Gated        any             `json:"gated"`
	Disabled     bool            `json:"disabled"`
	Downloads    int             `json:"downloads"`
	Likes        int             `json:"likes"`
	Tags         []string        `json:"tags"`
	CardData     map[string]any  `json:"cardData"`
	Siblings     []hfSiblingJSON `json:"siblings"`
}

type hfTreeJSON struct {
	Type string     `json:"type"`
	OID  string     `json:"oid"`
	Size int64      `json:"size"`
	Path string     `json:"path"`
	LFS  *hfLFSJSON `json:"lfs,omitempty"`
}

// hfPointer is the Git LFS pointer of an artifact: every artifact is served as an LFS file, whose oid is its
// sha256 and whose git blob ID is the pointer's.
func hfPointer(a artifactRow) (blobID string, size int) {
	p := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", a.SHA256, a.SizeBytes)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(p), p)
	return hex.EncodeToString(h.Sum(nil)), len(p)
}

// hfTime writes a time as the Hub does, always with milliseconds: older huggingface_hub releases parse
// lastModified with exactly "%Y-%m-%dT%H:%M:%S.%fZ" and fail on nanoseconds or on no fraction at all.
func hfTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func toHFInfoJSON(r hfRevision, kind string) hfInfoJSON {
	ns, _, _ := strings.Cut(r.repoID, "/")
	// Every download needs an entitlement: a gated listing's comes from an approved access request
	// ("manual"), any other's from an order ("auto": no one has to approve it).
	gated := "auto"
	if r.content.Gated {
		gated = "manual"
	}
	modified := r.version.UpdatedAt
	if r.version.DecidedAt != nil {
		modified = *r.version.DecidedAt
	}
	out := hfInfoJSON{ID: r.repoID, InternalID: r.listing.ID, Author: ns, SHA: hfVersionSHA(r.version.ID),
		LastModified: hfTime(modified), CreatedAt: hfTime(r.listing.CreatedAt), Private: r.content.Visibility == "restricted",
		Gated: gated, Tags: append([]string{}, r.content.Tags...), Siblings: []hfSiblingJSON{},
		CardData: map[string]any{"license": strings.ToLower(r.content.License.SPDX)}}
	if kind == KindModel {
		out.ModelID = r.repoID
	}
	for _, a := range r.files {
		id, ps := hfPointer(a)
		out.Siblings = append(out.Siblings, hfSiblingJSON{RFilename: a.Name, Size: a.SizeBytes, BlobID: id,
			LFS: &hfLFSJSON{SHA256: a.SHA256, Size: a.SizeBytes, PointerSize: ps}})
	}
	return out
}

func (h hfHandler) revision(c *fiber.Ctx, kind string) (web.Principal, hfRevision, error) {
	a, err := h.actor(c)
	if err != nil {
		return a, hfRevision{}, err
	}
	rev := hfParam(c, "rev")
	if rev == "" {
		rev = "main"
	}
	r, err := h.s.hfRevisionOf(c.UserContext(), a, kind, hfParam(c, "ns"), hfParam(c, "repo"), rev)
	return a, r, err
}

func (h hfHandler) info(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		_, r, err := h.revision(c, kind)
		if err != nil {
			return h.s.hfFail(c, err)
		}
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		return c.JSON(toHFInfoJSON(r, kind))
	}
}

// hfTreePage is the most entries one tree page holds (the Hub pages its tree too; clients follow Link).
const hfTreePage = 1000

func (h hfHandler) tree(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		_, r, err := h.revision(c, kind)
		if err != nil {
			return h.s.hfFail(c, err)
		}
		// Artifact names have no '/': the tree is one flat directory, and no path under it is a directory.
		if p := strings.Trim(hfParam(c, "*"), "/"); p != "" {
			return h.s.hfFail(c, &hfErr{http.StatusNotFound, hfEntryNotFound, fmt.Sprintf("%s: no such directory in %s", p, r.repoID)})
		}
		limit := hfTreePage
		if n, err := strconv.Atoi(c.Query("limit")); err == nil && n > 0 && n < limit {
			limit = n
		}
		after := ""
		if cur := c.Query("cursor"); cur != "" {
			b, err := base64.RawURLEncoding.DecodeString(cur)
			if err != nil {
				return h.s.hfFail(c, &hfErr{http.StatusBadRequest, "", "invalid cursor"})
			}
			after = string(b)
		}
		out := []hfTreeJSON{}
		more := false
		for _, a := range r.files { // ordered by name
			if a.Name <= after {
				continue
			}
			if len(out) == limit {
				more = true
				break
			}
			id, ps := hfPointer(a)
			out = append(out, hfTreeJSON{Type: "file", OID: id, Size: a.SizeBytes, Path: a.Name,
				LFS: &hfLFSJSON{OID: a.SHA256, Size: a.SizeBytes, PointerSize: ps}})
		}
		if more {
			q := url.Values{"cursor": {base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].Path))}, "limit": {strconv.Itoa(limit)}}
			for _, k := range []string{"recursive", "expand"} {
				if v := c.Query(k); v != "" {
					q.Set(k, v)
				}
			}
			c.Set("Link", fmt.Sprintf("<%s%s?%s>; rel=\"next\"", c.BaseURL(), c.Path(), q.Encode()))
		}
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		return c.JSON(out)
	}
}

// resolve answers HEAD and GET for one file with the Hub's headers. The bytes come from this process, never
// through a redirect to the store's signed URL: the Hub's clients send the bearer token along a redirect,
// which a presigned S3 URL refuses, and the signed blob route would not take an hf_-prefixed token.
func (h hfHandler) resolve(kind string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		a, r, err := h.revision(c, kind)
		if err != nil {
			return h.s.hfFail(c, err)
		}
		art, b, err := h.s.hfOpen(c.UserContext(), a, r, hfParam(c, "*"))
		if err != nil {
			return h.s.hfFail(c, err)
		}
		size := b.Size()
		etag := `"` + art.SHA256 + `"`
		c.Set("X-Repo-Commit", hfVersionSHA(r.version.ID))
		c.Set(fiber.HeaderETag, etag)
		c.Set("X-Linked-Etag", etag)
		c.Set("X-Linked-Size", strconv.FormatInt(size, 10))
		c.Set(fiber.HeaderAcceptRanges, "bytes")
		c.Set(fiber.HeaderContentType, art.ContentType)
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", art.Name))
		c.Set(fiber.HeaderCacheControl, "private, no-store")
		rng, ok := ParseRange(c.Get(fiber.HeaderRange), size)
		if !ok {
			_ = b.Close()
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", size))
			return h.s.hfFail(c, &hfErr{http.StatusRequestedRangeNotSatisfiable, "", "The requested range is outside the file"})
		}
		start, length := int64(0), size
		if rng != nil {
			start, length = rng.Start, rng.Length
			c.Status(http.StatusPartialContent)
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
		if c.Method() == fiber.MethodHead {
			_ = b.Close()
			c.Response().Header.SetContentLength(int(length))
			c.Response().SkipBody = true
			return nil
		}
		if _, err := b.Seek(start, io.SeekStart); err != nil {
			_ = b.Close()
			return h.s.hfFail(c, err)
		}
		return c.SendStream(readCloser{io.LimitReader(b, length), b}, int(length))
	}
}

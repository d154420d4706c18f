package marketplace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/eventbus"
	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
)

// Problems of the artifact-links endpoint (the testbed turns them into its own for the sandbox's launcher).
var (
	ErrArtifactsAccess = problem.New(http.StatusForbidden, "access_required",
		"Your organisation needs access to this listing to use its artifacts.")
	ErrNoArtifacts = problem.New(http.StatusUnprocessableEntity, "no_artifacts", "The listing's published version has no artifacts.")
)

// ArtifactLinks answers, for an organisation, the artifacts of a model's or dataset's published version with
// signed links to their bytes: what the testbed mounts into a sandbox. Who may have them is decided exactly as
// for a download (mayDownload: the vendor and staff; others with an entitlement); the links are the download
// endpoint's own, so the blob route checks the entitlement again when the bytes are fetched. A listing the
// organisation may not see answers 404, like a missing one.
func (s *Service) ArtifactLinks(ctx context.Context, r events.ArtifactLinksV1) (events.ArtifactLinksReplyV1, error) {
	db := s.db.WithContext(ctx)
	a := web.Principal{UserID: "testbed", OrgID: r.OrganizationID, Staff: r.Staff}
	notFound := fmt.Errorf("listing %s: %w", r.ListingID, ErrListingNotFound)
	l, err := getListing(db, r.ListingID, false)
	if err != nil {
		return events.ArtifactLinksReplyV1{}, err
	}
	if l.Kind == KindCompute || l.PublishedVersionID == "" {
		return events.ArtifactLinksReplyV1{}, notFound
	}
	if err := s.canSee(db, a, l); err != nil {
		return events.ArtifactLinksReplyV1{}, err
	}
	v, err := getVersion(db, l.PublishedVersionID)
	if err != nil {
		return events.ArtifactLinksReplyV1{}, err
	}
	c, err := decodeContent(v)
	if err != nil {
		return events.ArtifactLinksReplyV1{}, err
	}
	var arts []artifactRow
	if err := db.Where("version_id = ?", v.ID).Order("name").Find(&arts).Error; err != nil {
		return events.ArtifactLinksReplyV1{}, err
	}
	out := events.ArtifactLinksReplyV1{ListingID: l.ID, Kind: l.Kind, Title: c.Title, Slug: l.Slug, Version: v.Version,
		Artifacts: []events.ArtifactLinkV1{}}
	noAccess := ErrArtifactsAccess.WithDetailMsg("problem.access_required.artifacts", problem.Args{"Kind": l.Kind, "Title": c.Title}).
		WithExtra("gated", c.Gated).WithExtra("listing_id", l.ID)
	if !owns(a, l) && !a.Staff {
		// Access first, files after: whether a listing has files is not told to those who may not have them.
		if ok, err := entitled(db, a.OrgID, l.ID, s.now()); err != nil {
			return out, err
		} else if !ok {
			return out, noAccess
		}
	}
	if len(arts) == 0 {
		return out, ErrNoArtifacts.WithDetailMsg("problem.no_artifacts.version", problem.Args{"Kind": l.Kind, "Title": c.Title, "Version": v.Version})
	}
	for _, art := range arts {
		if err := s.mayDownload(db, a, art); err != nil {
			if errors.Is(err, ErrArtifactNotFound) {
				return out, noAccess
			}
			return out, err
		}
		u, err := s.signedLink(ctx, db, a, art)
		if err != nil {
			return out, err
		}
		out.Artifacts = append(out.Artifacts, events.ArtifactLinkV1{ArtifactID: art.ID, Name: art.Name, SHA256: art.SHA256,
			SizeBytes: art.SizeBytes, URL: u})
	}
	return out, nil
}

// serveArtifactLinks answers events.ArtifactLinks until ctx ends.
func (s *Service) serveArtifactLinks(ctx context.Context) error {
	sub, err := eventbus.Serve(ctx, s.bus, events.ArtifactLinks, "marketplace", s.ArtifactLinks)
	if err != nil {
		return err
	}
	<-ctx.Done()
	_ = sub.Drain()
	return nil
}

// signedLink is a signed, expiring URL of an artifact a may download (checked by the caller): the store's
// own presigned URL when it has one (S3), else the marketplace's blob route signed with HMAC.
func (s *Service) signedLink(ctx context.Context, db *gorm.DB, a web.Principal, art artifactRow) (string, error) {
	if p, ok := s.blobs.(Presigner); ok {
		return p.PresignGet(ctx, art.BlobKey, art.Name, s.cfg.DownloadTTL)
	}
	exp := s.now().Add(s.cfg.DownloadTTL).Unix()
	grant := "e"
	if l, err := getListing(db, art.ListingID, false); err == nil && (owns(a, l) || a.Staff) {
		grant = "p"
	}
	sig, err := s.sign(ctx, art.ID, a.OrgID, grant, exp)
	if err != nil {
		return "", err
	}
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "org": {a.OrgID}, "g": {grant}, "sig": {sig}}
	return BasePath + "/artifacts/" + url.PathEscape(art.ID) + "/blob?" + q.Encode(), nil
}

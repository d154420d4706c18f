package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/web"
	"github.com/tamarack-ai/tamarack/services/events"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// A model's or dataset's "try it" image: the vendor offers an OCI image pinned by digest with its listing
// (reviewed by staff in the marketplace, announced in listing.published), and an organisation with access to
// that listing starts it in a sandbox on a compute listing's pool, whose staff allow-list still decides. The
// compute listing sells the devices and time (and is billed as any sandbox); the image listing only says what
// runs.

// ImageListing is the projection of a published model or dataset listing's "try it" image. Image "" means a
// newer version withdrew it (the row keeps its version so that an older event cannot bring it back).
type ImageListing struct {
	ID          string `gorm:"primaryKey"`
	VendorOrgID string
	Kind        string
	Title       string
	Image       string
	Command     string // JSON array; "" or "[]": the image's own entrypoint and command
	Ports       string // comma-separated
	VisibleTo   string // comma-separated organisation IDs of a restricted listing; "" = public
	Gated       bool
	Version     int
	UpdatedAt   time.Time `gorm:"autoUpdateTime:false"`
}

func (ImageListing) TableName() string { return "testbed_image_listings" }

// visibleFor reports whether c may see the listing at all (as Listing.VisibleFor).
func (l ImageListing) visibleFor(c web.Principal) bool {
	return Listing{VendorOrgID: l.VendorOrgID, VisibleTo: l.VisibleTo}.VisibleFor(c)
}

// tryItTemplate is the profile of a sandbox started from a listing's image when the request names no template:
// the Python template's limits and idleness, the image's files, the listing's command and ports. It is not in
// the template list: it has nothing to run without a listing's image.
var tryItTemplate = Template{
	Name: "tryit", Title: "Try it", Description: "A model's or dataset's own image, as its vendor offers it with the listing.",
	Env:             map[string]string{"TERM": "xterm-256color"},
	CPUMillisPerGPU: 4000, MemoryBytesPerGPU: 16 * gib, Pids: 1024,
	IdleSignal: "access", IdleMinutes: 60,
	LogBytes: 16 * mib,
	Notes: "Runs the image the listing's vendor offers (reviewed by programme staff, pinned by digest, allowed on " +
		"the pool by staff), with the command and ports the listing names, or the image's own command. " + imageNote + " " + logNote,
}

// templateNamed finds a template by name, the try-it profile included.
func templateNamed(name string) (Template, bool) {
	if name == tryItTemplate.Name {
		return tryItTemplate, true
	}
	t, ok := templates[name]
	return t, ok
}

// template is what sb runs: its template, with the command and ports its image listing gave it in place of
// the template's when it was started from a listing's image.
func (s Sandbox) template() Template {
	t, _ := templateNamed(s.Template)
	if s.ImageListingID == "" {
		return t
	}
	t.Image = s.Image
	t.Command = nil
	_ = json.Unmarshal([]byte(s.Command), &t.Command)
	t.Ports = parsePorts(s.Ports)
	return t
}

func parsePorts(s string) []int {
	var out []int
	for _, p := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func joinPorts(ports []int) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, ",")
}

// applyImageListing updates the projection of try-it images from a published event of a model or dataset
// listing, inside ApplyListing's transaction: the event's image (or its withdrawal), unless a newer version
// is already there.
func applyImageListing(tx *gorm.DB, ev events.ListingChangedV1) error {
	cur, err := imageListingByID(tx, ev.ListingID)
	switch {
	case err == nil && cur.Version > ev.Version:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound) && ev.TryIt == nil:
		return nil // never offered one
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound):
		return err
	}
	l := ImageListing{ID: ev.ListingID, VendorOrgID: ev.VendorOrgID, Kind: ev.Kind, Title: ev.Title, Version: ev.Version,
		UpdatedAt: stamp(ev.At)}
	if t := ev.TryIt; t != nil {
		cmd := "[]"
		if len(t.Command) > 0 {
			b, _ := json.Marshal(t.Command)
			cmd = string(b)
		}
		l.Image, l.Command, l.Ports = t.Image, cmd, joinPorts(t.Ports)
		l.VisibleTo, l.Gated = strings.Join(t.VisibleTo, ","), t.Gated
	}
	return saveImageListing(tx, &l)
}

// imageListingFor returns the try-it image of a listing that c may start: 404 image_listing_not_found when
// the listing is not published with one or is not for c's organisation, 403 access_required without an
// entitlement to it (its vendor and staff are exempt), as the marketplace decides who may download a
// listing's artifacts.
func (s *Service) imageListingFor(ctx context.Context, c web.Principal, id string) (ImageListing, error) {
	l, err := imageListingWithImage(s.db.WithContext(ctx), id)
	if err != nil {
		return ImageListing{}, err
	}
	if !l.visibleFor(c) {
		return ImageListing{}, ErrImageListingNotFound
	}
	if c.Staff || (c.OrgID != "" && c.OrgID == l.VendorOrgID) {
		return l, nil
	}
	entitled, err := s.entitledListings(ctx, c)
	if err != nil {
		return ImageListing{}, err
	}
	if entitled[l.ID] {
		return l, nil
	}
	how := fmt.Sprintf("order one of its plans in the marketplace (POST /api/v1/marketplace/orders with listing_id %s)", l.ID)
	if l.Gated {
		how = fmt.Sprintf("request access from its vendor in the marketplace (POST /api/v1/marketplace/listings/%s/access-requests)", l.ID)
	}
	return ImageListing{}, ErrImageAccessRequired.WithDetailMsg("problem.access_required.image", problem.Args{"Kind": l.Kind, "Title": l.Title, "How": how}).WithExtra("image_listing_id", l.ID)
}

// checkPoolImage refuses, before anything is held or placed, an image that the pool's staff allow-list does
// not allow (422 image_not_allowed, the reason a sandbox would otherwise fail with once provisioning).
func checkPoolImage(pool Pool, ref string) error {
	policy, _, err := image.FromSettings(pool.SettingsMap())
	if err == nil {
		err = policy.Check(ref)
	}
	if err == nil {
		return nil
	}
	return ErrImageNotAllowed.WithDetailMsg("problem.image_not_allowed.pool", problem.Args{"Image": ref, "Pool": pool.Name, "Cause": err.Error(), "Setting": image.SettingAllow}).
		WithExtra("image", ref).WithExtra("pool_id", pool.ID)
}

// ImageAllowedOn reports, for each compute listing, whether its pool's allow-list lets the try-it image of
// imageListingID run there (for the launch form: which compute listings can run it). The image listing must be
// visible to c; access to it is checked at launch.
func (s *Service) ImageAllowedOn(ctx context.Context, c web.Principal, imageListingID string, ls []Listing) (map[string]bool, error) {
	il, err := imageListingWithImage(s.db.WithContext(ctx), imageListingID)
	if err != nil {
		return nil, err
	}
	if !il.visibleFor(c) {
		return nil, ErrImageListingNotFound
	}
	var poolIDs []string
	for _, l := range ls {
		poolIDs = append(poolIDs, l.PoolID)
	}
	slices.Sort(poolIDs)
	pools, err := poolsByID(s.db.WithContext(ctx), slices.Compact(poolIDs))
	if err != nil {
		return nil, err
	}
	ok := map[string]bool{}
	for _, p := range pools {
		ok[p.ID] = checkPoolImage(p, il.Image) == nil
	}
	out := map[string]bool{}
	for _, l := range ls {
		out[l.ID] = ok[l.PoolID]
	}
	return out, nil
}

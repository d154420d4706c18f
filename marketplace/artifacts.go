package marketplace

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/platform/sqldb"
	"github.com/tamarack-ai/tamarack/platform/web"
)

// UploadInput is one streamed artifact.
type UploadInput struct {
	ListingID string
	Version   int
	Name      string
	Body      io.Reader
	// Length is the declared Content-Length (-1 when unknown): an upload declared too large is refused
	// before a byte is read.
	Length int64
	// SHA256 is the digest the client declares (hex or base64), checked against the bytes; empty skips.
	SHA256 string
}

var errOverLimit = errors.New("over the size limit")

// limitedHash counts, hashes and keeps the head of what passes through, failing past max bytes.
type limitedHash struct {
	r    io.Reader
	max  int64
	n    int64
	h    hash.Hash
	head []byte
}

func (l *limitedHash) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		l.n += int64(n)
		if l.n > l.max {
			return 0, errOverLimit
		}
		l.h.Write(p[:n])
		if len(l.head) < 512 {
			l.head = append(l.head, p[:min(n, 512-len(l.head))]...)
		}
	}
	return n, err
}

// ParseDigest reads a SHA-256 digest given as hex, base64, or an RFC 3230 "sha-256=<base64>" Digest header.
func ParseDigest(s string) (string, error) {
	s = strings.TrimSpace(s)
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(k, "sha-256") {
			s = v
			break
		}
	}
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return hex.EncodeToString(b), nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b), nil
		}
	}
	return "", ErrBadChecksum
}

// Upload streams an artifact of an editable version into the blob store, hashing it on the way. Over the
// size limit or with a wrong checksum nothing is kept. An artifact of the same name is replaced.
func (s *Service) Upload(ctx context.Context, a web.Principal, in UploadInput) (artifactRow, error) {
	if !nameRE.MatchString(in.Name) || strings.Contains(in.Name, "..") {
		return artifactRow{}, ErrBadName
	}
	want := ""
	if in.SHA256 != "" {
		var err error
		if want, err = ParseDigest(in.SHA256); err != nil {
			return artifactRow{}, err
		}
	}
	db := s.db.WithContext(ctx)
	l, err := getListing(db, in.ListingID, false)
	if err != nil {
		return artifactRow{}, err
	}
	if err := requireVendor(a, l, false); err != nil {
		return artifactRow{}, err
	}
	v, err := getVersionByNumber(db, l.ID, in.Version)
	if err != nil {
		return artifactRow{}, err
	}
	if v.State != StateDraft && v.State != StateChangesRequested {
		return artifactRow{}, fmt.Errorf("version %d is %s: %w", v.Version, v.State, ErrNotEditable)
	}
	var used int64
	if err := db.Model(&artifactRow{}).Select("COALESCE(SUM(size_bytes), 0)").
		Where("version_id = ? AND name <> ?", v.ID, in.Name).Scan(&used).Error; err != nil {
		return artifactRow{}, err
	}
	limit := min(s.cfg.MaxFileBytes, s.cfg.MaxVersionBytes-used)
	tooLarge := ErrTooLarge.WithExtra("limit_bytes", max(limit, 0))
	if limit <= 0 || in.Length > limit {
		return artifactRow{}, tooLarge
	}
	id := newID("art")
	key := "artifacts/" + id
	lr := &limitedHash{r: in.Body, max: limit, h: sha256.New()}
	ct := mime.TypeByExtension(path.Ext(in.Name))
	n, err := s.blobs.Put(ctx, key, lr, firstNonEmpty(ct, "application/octet-stream"))
	if err != nil {
		_ = s.blobs.Delete(context.WithoutCancel(ctx), key)
		if errors.Is(err, errOverLimit) || lr.n > limit {
			return artifactRow{}, tooLarge
		}
		return artifactRow{}, fmt.Errorf("store artifact: %w", err)
	}
	sum := hex.EncodeToString(lr.h.Sum(nil))
	if want != "" && want != sum {
		_ = s.blobs.Delete(context.WithoutCancel(ctx), key)
		return artifactRow{}, ErrChecksumMismatch.WithExtra("sha256", sum)
	}
	sniffed := http.DetectContentType(lr.head)
	if ct == "" || !strings.HasPrefix(sniffed, "application/octet-stream") && !strings.HasPrefix(sniffed, "text/plain") {
		ct = sniffed
	}
	now := s.now()
	row := artifactRow{ID: id, ListingID: l.ID, VersionID: v.ID, Name: in.Name, BlobKey: key, SizeBytes: n, SHA256: sum,
		ContentType: ct, UploadedBy: a.UserID, CreatedAt: now}
	var replaced []string
	err = sqldb.Tx(ctx, s.db, func(tx *gorm.DB) error {
		replaced = nil
		cur, err := getVersion(tx, v.ID)
		if err != nil {
			return err
		}
		if cur.State != StateDraft && cur.State != StateChangesRequested {
			return fmt.Errorf("version %d is %s: %w", v.Version, cur.State, ErrNotEditable)
		}
		var old []artifactRow
		if err := tx.Where("version_id = ? AND name = ?", v.ID, in.Name).Find(&old).Error; err != nil {
			return err
		}
		for _, o := range old {
			if err := tx.Delete(&artifactRow{}, "id = ?", o.ID).Error; err != nil {
				return err
			}
			var refs int64
			if err := tx.Model(&artifactRow{}).Where("blob_key = ?", o.BlobKey).Count(&refs).Error; err != nil {
				return err
			}
			if refs == 0 {
				replaced = append(replaced, o.BlobKey)
			}
		}
		if err := tx.Create(&row).Error; err != nil {
			if sqldb.IsDuplicate(err) {
				return ErrArtifactExists.WithDetailMsg("problem.artifact_exists.race", problem.Args{"Name": in.Name})
			}
			return err
		}
		return writeHistory(tx, l, v, a, "artifact_uploaded", []string{"artifacts/" + in.Name}, "", now)
	})
	if err != nil {
		_ = s.blobs.Delete(context.WithoutCancel(ctx), key)
		return artifactRow{}, err
	}
	for _, k := range replaced {
		if err := s.blobs.Delete(ctx, k); err != nil {
			s.log.Warn("replaced artifact blob not deleted", "key", k, "err", err)
		}
	}
	return row, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mayDownload decides whether a's organisation may fetch the artifact: its vendor and staff always; others
// need an entitlement, the listing published or retired, and the artifact in a version that was published.
func (s *Service) mayDownload(db *gorm.DB, a web.Principal, art artifactRow) error {
	notFound := fmt.Errorf("artifact %s: %w", art.ID, ErrArtifactNotFound)
	l, err := getListing(db, art.ListingID, false)
	if err != nil {
		return notFound
	}
	if owns(a, l) || a.Staff {
		return nil
	}
	if l.Status != StatusPublished && l.Status != StatusRetired {
		return notFound
	}
	v, err := getVersion(db, art.VersionID)
	if err != nil || (v.State != StatePublished && v.State != StateSuperseded) {
		return notFound
	}
	ok, err := entitled(db, a.OrgID, l.ID, s.now())
	if err != nil {
		return err
	}
	if !ok {
		return notFound
	}
	return nil
}

// DownloadURL returns a signed, expiring URL for an artifact the caller's organisation may download: the
// store's own presigned URL when it has one (S3), else the marketplace's blob route signed with HMAC.
func (s *Service) DownloadURL(ctx context.Context, a web.Principal, artifactID string) (string, error) {
	if !a.Authenticated() {
		return "", fmt.Errorf("artifact %s: %w", artifactID, ErrArtifactNotFound)
	}
	db := s.db.WithContext(ctx)
	var art artifactRow
	if err := db.Where("id = ?", artifactID).Take(&art).Error; err != nil {
		if sqldb.IsNotFound(err) {
			return "", fmt.Errorf("artifact %s: %w", artifactID, ErrArtifactNotFound)
		}
		return "", err
	}
	if err := s.mayDownload(db, a, art); err != nil {
		return "", err
	}
	return s.signedLink(ctx, db, a, art)
}

func (s *Service) sign(ctx context.Context, artifactID, org, grant string, exp int64) (string, error) {
	key, err := s.signingKey(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\n%s\n%s\n%d", artifactID, org, grant, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// OpenSigned checks a signed download link and opens the artifact. The signature binds the artifact, the
// organisation, the link's grant ("e": an entitlement, checked again so that a lost one stops old links; "p":
// the vendor's or staff's own access) and the expiry.
func (s *Service) OpenSigned(ctx context.Context, artifactID, org, grant, expStr, sig string) (artifactRow, Blob, error) {
	exp, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || s.now().Unix() > exp || (grant != "e" && grant != "p") {
		return artifactRow{}, nil, ErrBadSignature
	}
	want, err := s.sign(ctx, artifactID, org, grant, exp)
	if err != nil {
		return artifactRow{}, nil, err
	}
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return artifactRow{}, nil, ErrBadSignature
	}
	db := s.db.WithContext(ctx)
	var art artifactRow
	if err := db.Where("id = ?", artifactID).Take(&art).Error; err != nil {
		if sqldb.IsNotFound(err) {
			return artifactRow{}, nil, ErrArtifactNotFound
		}
		return artifactRow{}, nil, err
	}
	if grant == "e" {
		if err := s.mayDownload(db, web.Principal{UserID: "signed-link", OrgID: org}, art); err != nil {
			return artifactRow{}, nil, err
		}
	}
	b, err := s.blobs.Open(ctx, art.BlobKey)
	if err != nil {
		return artifactRow{}, nil, fmt.Errorf("open artifact %s: %w", art.ID, err)
	}
	return art, b, nil
}

// ByteRange is one satisfiable range of a blob.
type ByteRange struct{ Start, Length int64 }

// ParseRange reads a single "bytes=" range against size. ok is false when the header asks for something
// unsatisfiable; several ranges are answered with the whole body (RFC 9110 allows it) by returning nil.
func ParseRange(h string, size int64) (r *ByteRange, ok bool) {
	if h == "" {
		return nil, true
	}
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return nil, true
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return nil, true
	}
	switch {
	case a == "":
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return nil, false
		}
		n = min(n, size)
		return &ByteRange{size - n, n}, size > 0
	default:
		start, err := strconv.ParseInt(a, 10, 64)
		if err != nil || start < 0 || start >= size {
			return nil, false
		}
		end := size - 1
		if b != "" {
			e, err := strconv.ParseInt(b, 10, 64)
			if err != nil || e < start {
				return nil, false
			}
			end = min(e, size-1)
		}
		return &ByteRange{start, end - start + 1}, true
	}
}

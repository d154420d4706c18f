package marketplace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// BlobStore keeps artifact bytes. Keys are opaque paths chosen by the marketplace ("artifacts/<id>").
type BlobStore interface {
	// Put stores r under key, returning the bytes written. An error leaves nothing behind.
	Put(ctx context.Context, key string, r io.Reader, contentType string) (int64, error)
	// Open returns the blob for reading with seeking (ranges).
	Open(ctx context.Context, key string) (Blob, error)
	Delete(ctx context.Context, key string) error
}

// Blob is an open stored object.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// Presigner is implemented by stores that can hand out their own signed, expiring URLs (S3): downloads then
// go straight to the store instead of through the API process.
type Presigner interface {
	PresignGet(ctx context.Context, key, filename string, ttl time.Duration) (string, error)
}

// ErrBlobNotFound is returned by Open for a missing key.
var ErrBlobNotFound = errors.New("blob not found")

// LocalStore keeps blobs as files under a directory (the default: <data>/blobs).
type LocalStore struct{ Dir string }

// NewLocalStore creates dir when missing.
func NewLocalStore(dir string) (*LocalStore, error) {
	if dir == "" {
		return nil, errors.New("local blob store: empty directory")
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o750); err != nil {
		return nil, fmt.Errorf("local blob store: %w", err)
	}
	return &LocalStore{Dir: dir}, nil
}

func (s *LocalStore) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if clean == "/" || strings.Contains(key, "..") {
		return "", fmt.Errorf("invalid blob key %q", key)
	}
	return filepath.Join(s.Dir, clean), nil
}

// Put writes to a temporary file and renames it into place, so a failed or cut upload leaves nothing.
func (s *LocalStore) Put(ctx context.Context, key string, r io.Reader, _ string) (int64, error) {
	dst, err := s.path(key)
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.Dir, "tmp"), "upload-*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o750)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return 0, err
	}
	return n, nil
}

// Open opens the file.
func (s *LocalStore) Open(_ context.Context, key string) (Blob, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrBlobNotFound
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return localBlob{f, st.Size(), st.ModTime()}, nil
}

// Delete removes the file; a missing one is not an error.
func (s *LocalStore) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type localBlob struct {
	*os.File
	size int64
	mod  time.Time
}

func (b localBlob) Size() int64        { return b.size }
func (b localBlob) ModTime() time.Time { return b.mod }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// S3Store keeps blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...) through minio-go.
type S3Store struct {
	client *minio.Client
	bucket string
	prefix string
}

// S3Config configures NewS3Store. URL is s3://bucket/prefix?endpoint=host:port&region=r&insecure=true.
type S3Config struct {
	URL       string
	AccessKey string
	SecretKey string
}

// NewS3Store connects to the bucket named by cfg.URL; it does not create the bucket.
func NewS3Store(cfg S3Config) (*S3Store, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3 blob store: use s3://bucket[/prefix]?endpoint=host:port[&region=r][&insecure=true]")
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: q.Get("insecure") != "true",
		Region: q.Get("region"),
	})
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: %w", err)
	}
	return &S3Store{client: client, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
}

func (s *S3Store) key(k string) string {
	if s.prefix == "" {
		return k
	}
	return s.prefix + "/" + k
}

// Put streams r as a multipart upload of unknown size; a failed upload is aborted by minio-go.
func (s *S3Store) Put(ctx context.Context, key string, r io.Reader, contentType string) (int64, error) {
	info, err := s.client.PutObject(ctx, s.bucket, s.key(key), r, -1, minio.PutObjectOptions{
		ContentType: contentType, PartSize: 16 << 20,
	})
	if err != nil {
		return 0, fmt.Errorf("s3 put %s: %w", key, err)
	}
	return info.Size, nil
}

// Open returns a seekable object reader.
func (s *S3Store) Open(ctx context.Context, key string) (Blob, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", key, err)
	}
	st, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, ErrBlobNotFound
		}
		return nil, fmt.Errorf("s3 stat %s: %w", key, err)
	}
	return s3Blob{obj, st.Size, st.LastModified}, nil
}

// Delete removes the object.
func (s *S3Store) Delete(ctx context.Context, key string) error {
	return s.client.RemoveObject(ctx, s.bucket, s.key(key), minio.RemoveObjectOptions{})
}

// PresignGet returns a signed GET URL valid for ttl that downloads as filename.
func (s *S3Store) PresignGet(ctx context.Context, key, filename string, ttl time.Duration) (string, error) {
	params := url.Values{}
	params.Set("response-content-disposition", fmt.Sprintf("attachment; filename=%q", filename))
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.key(key), ttl, params)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

type s3Blob struct {
	*minio.Object
	size int64
	mod  time.Time
}

func (b s3Blob) Size() int64        { return b.size }
func (b s3Blob) ModTime() time.Time { return b.mod }

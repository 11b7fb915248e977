package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// The embedded S3 server accepts any signature; these only have to be
// non-empty for clients to sign with.
const (
	s3AccessKey = "herd"
	s3SecretKey = "herd-embedded"
	s3Bucket    = "herd"
)

// s3Server is gofakes3 over its afero backend, with every object a plain
// file under dir/buckets/BUCKET/KEY and its metadata under dir/metadata.
//
// The afero backend is used rather than the bolt one because it streams
// object bodies to disk (bolt holds each object in memory as one value, and
// image blobs can be large), deleted objects give their space back, and the
// data stays readable with ls and cat. Its one limit: a key cannot also be a
// "directory" of other keys ("a" and "a/b" cannot both exist).
type s3Server struct {
	endpoint string
	srv      *http.Server
	done     chan error
}

func startS3(dir string, log *slog.Logger) (*s3Server, error) {
	fs, err := s3afero.FsPath(dir, s3afero.FsPathCreateAll)
	if err != nil {
		return nil, fmt.Errorf("embedded s3: open %s: %w", dir, err)
	}
	backend, err := s3afero.MultiBucket(fs)
	if err != nil {
		return nil, fmt.Errorf("embedded s3: open %s: %w", dir, err)
	}
	exists, err := backend.BucketExists(s3Bucket)
	if err != nil {
		return nil, fmt.Errorf("embedded s3: look for bucket %q: %w", s3Bucket, err)
	}
	if !exists {
		if err := backend.CreateBucket(s3Bucket); err != nil {
			return nil, fmt.Errorf("embedded s3: create bucket %q: %w", s3Bucket, err)
		}
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(s3Log{log}))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded s3: listen: %w", err)
	}
	s := &s3Server{
		endpoint: l.Addr().String(),
		srv:      &http.Server{Handler: decodeChunkedUploads(faker.Server()), ReadHeaderTimeout: 10 * time.Second},
		done:     make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(l) }()
	return s, nil
}

func (s *s3Server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("embedded s3: stop: %w", err)
	}
	return nil
}

// s3Log passes gofakes3's log lines to slog. Its INFO lines (one per
// request) go to debug level.
type s3Log struct{ log *slog.Logger }

func (l s3Log) Print(level gofakes3.LogLevel, v ...any) {
	msg := fmt.Sprint(v...)
	switch level {
	case gofakes3.LogErr:
		l.log.Error(msg)
	case gofakes3.LogWarn:
		l.log.Warn(msg)
	default:
		l.log.Debug(msg)
	}
}

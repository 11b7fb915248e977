// Package embedded runs the Redis and S3 servers herd needs inside the
// current process, so that `make run` works on a machine with nothing but Go
// installed.
//
// Both servers listen on 127.0.0.1 on random ports and the rest of herd
// reaches them the ordinary way, through go-redis and minio-go over loopback:
// nothing in herd knows it is talking to an embedded server. Their state lives
// under one directory and survives a restart:
//
//	DIR/redis.snapshot   the whole Redis keyspace (see snapshot.go)
//	DIR/s3/              one folder per bucket, one file per object
//	DIR/lock             held while running, so two processes never share DIR
//
// This is for development only. The appliance runs real Redis (with AOF) and
// MinIO; see infra/.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// SnapshotInterval is how often the Redis keyspace is written to disk when it
// changed. Close always writes a final snapshot.
const SnapshotInterval = 2 * time.Second

// Embedded is a running pair of in-process Redis and S3 servers.
type Embedded struct {
	log   *slog.Logger
	lock  *os.File
	redis *redisServer
	s3    *s3Server
}

// S3Config says how to reach the embedded S3 server. The server does not
// check credentials (it listens on loopback only); the keys are there so that
// clients can sign requests as they would against MinIO.
type S3Config struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	Bucket    string // created at start if missing
}

// Start starts both servers with their state under dir, creating dir if
// needed and restoring what a previous run left there. ctx bounds the start
// only; the servers run until Close. A nil log discards log output.
func Start(ctx context.Context, dir string, log *slog.Logger) (*Embedded, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded servers: create state directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("embedded servers: %w", err)
	}
	e := &Embedded{log: log, lock: lock}

	e.redis, err = startRedis(ctx, filepath.Join(dir, "redis.snapshot"), log.With("component", "embedded-redis"))
	if err != nil {
		e.Close()
		return nil, err
	}
	e.s3, err = startS3(filepath.Join(dir, "s3"), log.With("component", "embedded-s3"))
	if err != nil {
		e.Close()
		return nil, err
	}
	log.Info("embedded servers started", "dir", dir, "redis", e.RedisURL(), "s3", e.s3.endpoint)
	return e, nil
}

// RedisURL returns the URL of the embedded Redis server, database 0.
func (e *Embedded) RedisURL() string {
	return "redis://" + e.redis.addr() + "/0"
}

// S3 returns how to reach the embedded S3 server.
func (e *Embedded) S3() S3Config {
	return S3Config{
		Endpoint:  e.s3.endpoint,
		AccessKey: s3AccessKey,
		SecretKey: s3SecretKey,
		Bucket:    s3Bucket,
	}
}

// Close stops both servers, writes the final Redis snapshot and releases the
// state directory. Stop the clients first: whatever they send after Close has
// begun is lost.
func (e *Embedded) Close() error {
	var errs []error
	if e.s3 != nil {
		errs = append(errs, e.s3.close())
	}
	if e.redis != nil {
		errs = append(errs, e.redis.close())
	}
	if e.lock != nil {
		errs = append(errs, e.lock.Close())
	}
	return errors.Join(errs...)
}

package config

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/api/option"
	gcs "google.golang.org/api/storage/v1"

	"github.com/conifer-kt/conifer/realm"
)

// maxRealmBytes caps a realm config document.
const maxRealmBytes = 1 << 20

// LoadRealm reads and validates the realm config named by source (the
// value of CONIFER_REALM_CONFIG):
//
//   - inline JSON, if it starts with '{' (after spaces);
//   - "gs://bucket/object": read from Cloud Storage with the function's
//     credentials (opts, if given, configure the client);
//   - anything else: a file path.
//
// The document is parsed strictly by realm.Parse and capped at 1 MiB.
func LoadRealm(ctx context.Context, source string, opts ...option.ClientOption) (*realm.Config, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case strings.HasPrefix(strings.TrimSpace(source), "{"):
		b = []byte(source)
	case strings.HasPrefix(source, "gs://"):
		b, err = readGCS(ctx, source, opts)
	default:
		b, err = readFile(source)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't read realm config: %w", err)
	}
	if len(b) > maxRealmBytes {
		return nil, fmt.Errorf("couldn't read realm config: longer than %d bytes", maxRealmBytes)
	}
	c, err := realm.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("couldn't load realm config: %w", err)
	}
	return c, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxRealmBytes+1))
}

func readGCS(ctx context.Context, url string, opts []option.ClientOption) ([]byte, error) {
	if !reGCS.MatchString(url) {
		return nil, fmt.Errorf("%q is not a gs://bucket/object URL", url)
	}
	bucket, object, _ := strings.Cut(strings.TrimPrefix(url, "gs://"), "/")
	opts = append([]option.ClientOption{option.WithScopes(gcs.DevstorageReadOnlyScope)}, opts...)
	svc, err := gcs.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("couldn't create Cloud Storage client: %w", err)
	}
	resp, err := svc.Objects.Get(bucket, object).Context(ctx).Download()
	if err != nil {
		return nil, fmt.Errorf("couldn't download %s: %w", url, err)
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, maxRealmBytes+1))
}

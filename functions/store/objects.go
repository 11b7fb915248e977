package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own model types are marshalled here; they always encode.
		panic(fmt.Sprintf("store: encode %T: %v", v, err))
	}
	return string(b)
}

// getJSON reads and decodes one object; ok is false when the key is absent.
func getJSON[T any](ctx context.Context, c redis.Cmdable, key string) (v T, ok bool, err error) {
	raw, err := c.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return v, false, nil
	}
	if err != nil {
		return v, false, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return v, false, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, true, nil
}

// mgetJSON reads many objects at once, in order, skipping absent keys.
func mgetJSON[T any](ctx context.Context, c redis.Cmdable, keys []string) ([]T, error) {
	out := make([]T, 0, len(keys))
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		end := min(start+chunk, len(keys))
		vals, err := c.MGet(ctx, keys[start:end]...).Result()
		if err != nil {
			return nil, fmt.Errorf("read %d objects: %w", end-start, err)
		}
		for i, raw := range vals {
			str, ok := raw.(string)
			if !ok {
				continue
			}
			var v T
			if err := json.Unmarshal([]byte(str), &v); err != nil {
				return nil, fmt.Errorf("decode %s: %w", keys[start+i], err)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// ListOptions select one page of a list.
type ListOptions struct {
	// Names limits the list to these names (an expanded noderange); nil
	// means all.
	Names []string
	// Match, when set, keeps only objects it returns true for.
	Limit  int    // page size; 0 means 100, at most 1000
	Cursor string // the name after which the page starts
}

func (o ListOptions) limit() int {
	switch {
	case o.Limit <= 0:
		return 100
	case o.Limit > 1000:
		return 1000
	}
	return o.Limit
}

// listNames returns the sorted names of every object of a kind, optionally
// restricted to the given names.
func (s *Store) listNames(ctx context.Context, kind string, only []string) ([]string, error) {
	names, err := s.rdb.ZRange(ctx, s.key("idx", kind), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", kind, err)
	}
	if only != nil {
		want := make(map[string]bool, len(only))
		for _, n := range only {
			want[n] = true
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !want[n] })
	}
	return names, nil
}

// listObjects reads the objects of one kind, keeps those match accepts, and
// cuts one page from them. Names sort in byte order, so a page is stable
// under concurrent inserts elsewhere in the list.
func listObjects[T any](ctx context.Context, s *Store, kind string, opts ListOptions, name func(T) string, match func(T) bool) (items []T, next string, total int, err error) {
	names, err := s.listNames(ctx, kind, opts.Names)
	if err != nil {
		return nil, "", 0, err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.key(kind, n)
	}
	all, err := mgetJSON[T](ctx, s.rdb, keys)
	if err != nil {
		return nil, "", 0, fmt.Errorf("list %ss: %w", kind, err)
	}
	if match != nil {
		all = slices.DeleteFunc(all, func(v T) bool { return !match(v) })
	}
	total = len(all)
	start := 0
	if opts.Cursor != "" {
		start = sort.Search(len(all), func(i int) bool { return name(all[i]) > opts.Cursor })
	}
	end := min(start+opts.limit(), len(all))
	items = all[start:end]
	if end < len(all) {
		next = name(items[len(items)-1])
	}
	return items, next, total, nil
}

// changedFields names the top-level JSON fields that differ between two
// versions of an object, for the audit event.
func changedFields(before, after any) string {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal([]byte(mustJSON(before)), &a)
	_ = json.Unmarshal([]byte(mustJSON(after)), &b)
	var out []string
	for k, v := range b {
		if k == "revision" || k == "updated" || k == "created" || k == "effective" {
			continue
		}
		if string(a[k]) != string(v) {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok && k != "effective" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// checkRevision enforces If-Match: want 0 means no precondition.
func checkRevision(kind, name string, have, want int64) error {
	if want != 0 && have != want {
		return errf(KindPrecondition, "", "%s %q changed since you read it (revision %d, you sent %d): read it again and retry", kind, name, have, want)
	}
	return nil
}

func notFound(kind, name string) error {
	return errf(KindNotFound, "", "%s %q does not exist", kind, name)
}

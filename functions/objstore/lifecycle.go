package objstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// expireRuleID names the bucket lifecycle rule herd keeps for prefix; an
// admin's own rules are left as they are.
func expireRuleID(prefix string) string { return "herd-expire-" + prefix }

// ExpireAfter makes the object store itself delete objects under prefix
// days after they were written (a bucket lifecycle rule, which MinIO and
// S3 both carry out); days 0 removes the rule, so they are kept. The rule
// is written only when it differs from the bucket's.
func (s *Store) ExpireAfter(ctx context.Context, prefix string, days int) error {
	cfg, err := s.mc.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code != "NoSuchLifecycleConfiguration" {
			return fmt.Errorf("object store: read the lifecycle of bucket %s: %w", s.bucket, err)
		}
		cfg = lifecycle.NewConfiguration()
	}
	id := expireRuleID(prefix)
	rules := slices.DeleteFunc(slices.Clone(cfg.Rules), func(r lifecycle.Rule) bool { return r.ID == id })
	if days > 0 {
		rules = append(rules, lifecycle.Rule{ID: id, Status: "Enabled",
			RuleFilter: lifecycle.Filter{Prefix: prefix},
			Expiration: lifecycle.Expiration{Days: lifecycle.ExpirationDays(days)}})
	}
	if ruleSet(rules) == ruleSet(cfg.Rules) {
		return nil
	}
	cfg.Rules = rules
	if err := s.mc.SetBucketLifecycle(ctx, s.bucket, cfg); err != nil {
		return fmt.Errorf("object store: expire %s after %d days in bucket %s: %w", prefix, days, s.bucket, err)
	}
	return nil
}

// Expiry returns the days after which objects under prefix expire by
// herd's rule, 0 when there is none.
func (s *Store) Expiry(ctx context.Context, prefix string) (int, error) {
	cfg, err := s.mc.GetBucketLifecycle(ctx, s.bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchLifecycleConfiguration" {
			return 0, nil
		}
		return 0, fmt.Errorf("object store: read the lifecycle of bucket %s: %w", s.bucket, err)
	}
	for _, r := range cfg.Rules {
		if r.ID == expireRuleID(prefix) && r.Status == "Enabled" {
			return int(r.Expiration.Days), nil
		}
	}
	return 0, nil
}

// ruleSet is what decides whether two rule lists differ: each rule's id,
// status, prefix and expiry.
func ruleSet(rules []lifecycle.Rule) string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, fmt.Sprintf("%s|%s|%s|%s|%d", r.ID, r.Status, r.Prefix, r.RuleFilter.Prefix, r.Expiration.Days))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

package ratelimit_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/ratelimit"
	"github.com/nexus/nexus/internal/infra/ratelimit/redistest"
)

// BenchmarkLimiter measures what the limiter adds to one request: both
// windows (minute with burst, hour) decided for one key, locally and
// against a real redis-server on loopback. Limits are high enough that
// every request is allowed, the costlier path in Redis (two calls). Run
// with: go test -run '^$' -bench Limiter ./internal/infra/ratelimit/
func BenchmarkLimiter(b *testing.B) {
	limits := []ratelimit.Limit{
		{Name: "minute", Rate: 1 << 30, Burst: 1 << 30, Period: time.Minute},
		{Name: "hour", Rate: 1 << 30, Burst: 1 << 30, Period: time.Hour},
	}
	run := func(b *testing.B, s store) {
		b.Run("serial", func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if d, err := s.Allow(ctx, "bench", limits...); err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
		})
		b.Run("parallel-100-keys", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				i := 0
				for pb.Next() {
					i++
					if _, err := s.Allow(ctx, "k"+strconv.Itoa(i%100), limits...); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	b.Run("local", func(b *testing.B) { run(b, ratelimit.NewLocal(nil, 0)) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		r, err := ratelimit.NewRedis(ratelimit.RedisOptions{URL: srv.URL(), Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		run(b, r)
	})
}

package httpx

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxDelaySeconds is the longest delay ParseRetryAfter accepts, in either
// form.
// A server asking for more than a day is misconfigured or hostile, so such a
// hint is ignored rather than capped; callers cap the hints they honour at
// their own, much shorter, maximum.
const maxDelaySeconds = 24 * time.Hour

// ParseRetryAfter returns how long a Retry-After header value v asks the
// client to wait, measured from now, or 0 when v is absent, unusable or asks
// for no wait at all; callers treat 0 as "no hint" and fall back to their own
// backoff. Both forms of RFC 9110 section 10.2.3 are accepted:
//
//   - delay-seconds, e.g. "120". Fractional values such as "0.5" are accepted
//     too, because some rate limiters send them; other number syntaxes that
//     strconv would take ("1e3", "0x1p4", "+5", "NaN", "Inf") are rejected.
//     Values over a day are ignored.
//   - an HTTP-date in any form http.ParseTime reads, e.g.
//     "Wed, 21 Oct 2015 07:28:00 GMT"; a date not after now, or more than a
//     day after it, gives 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if isDecimal(v) {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs <= 0 || secs > maxDelaySeconds.Seconds() {
			return 0
		}
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= maxDelaySeconds {
			return d
		}
	}
	return 0
}

// isDecimal reports whether v is digits with at most one '.', the only
// number syntax ParseRetryAfter hands to strconv.ParseFloat.
func isDecimal(v string) bool {
	digits, dots := 0, 0
	for _, c := range v {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

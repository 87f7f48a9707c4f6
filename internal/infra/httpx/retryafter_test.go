package httpx_test

import (
	"testing"
	"time"

	"github.com/nexus/nexus/internal/infra/httpx"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name string
		v    string
		want time.Duration
	}{
		{name: "whole seconds", v: "120", want: 120 * time.Second},
		{name: "one second", v: "1", want: time.Second},
		{name: "fractional seconds", v: "0.3", want: 300 * time.Millisecond},
		{name: "fraction without leading digit", v: ".5", want: 500 * time.Millisecond},
		{name: "surrounding whitespace", v: "  7 ", want: 7 * time.Second},
		{name: "exactly a day", v: "86400", want: 24 * time.Hour},
		{name: "IMF-fixdate in the future", v: "Tue, 04 Mar 2025 05:06:37 GMT", want: 30 * time.Second},
		{name: "RFC 850 date in the future", v: "Tuesday, 04-Mar-25 05:07:07 GMT", want: time.Minute},
		{name: "asctime date in the future", v: "Tue Mar  4 05:06:17 2025", want: 10 * time.Second},
		{name: "empty means no hint", v: "", want: 0},
		{name: "blank means no hint", v: "   ", want: 0},
		{name: "zero asks for no wait", v: "0", want: 0},
		{name: "negative is invalid", v: "-5", want: 0},
		{name: "over a day is ignored", v: "86401", want: 0},
		{name: "date in the past", v: "Tue, 04 Mar 2025 05:06:00 GMT", want: 0},
		{name: "date a day ahead", v: "Wed, 05 Mar 2025 05:06:07 GMT", want: 24 * time.Hour},
		{name: "date over a day ahead is ignored", v: "Wed, 05 Mar 2025 05:06:08 GMT", want: 0},
		{name: "date equal to now", v: "Tue, 04 Mar 2025 05:06:07 GMT", want: 0},
		{name: "garbage", v: "soon", want: 0},
		{name: "unit suffix", v: "5s", want: 0},
		{name: "two dots", v: "1.2.3", want: 0},
		{name: "lone dot", v: ".", want: 0},
		{name: "explicit plus sign", v: "+5", want: 0},
		{name: "exponent", v: "1e3", want: 0},
		{name: "hex float", v: "0x1p4", want: 0},
		{name: "NaN", v: "NaN", want: 0},
		{name: "infinity", v: "Inf", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := httpx.ParseRetryAfter(tt.v, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}

package node

import (
	"testing"
	"time"
)

// FuzzParseExpiry: a share's --expires is user text; any accepted value is
// zero (never) or strictly after now, and never panics on huge numbers.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"", "7d", "36h", "1d12h", "90m", "2030-01-02T03:04:05Z", "2000-01-01T00:00:00Z", "999999d", "0s", "1x", "d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		exp, err := ParseExpiry(s, now)
		if err != nil {
			return
		}
		if !exp.IsZero() && !exp.After(now) {
			t.Fatalf("ParseExpiry(%q) = %v, not after now %v", s, exp, now)
		}
	})
}

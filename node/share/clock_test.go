package share

import (
	"context"
	"testing"
	"time"
)

// TestClockSkewShareExpiry (issue 9, item 5; docs/RELIABILITY.md): a share
// stops being served when the sharer's clock passes its expiry, whatever
// the friend's clock says; a friend whose clock runs ahead refuses the
// link early by its own clock (docs/SHARE.md: "the reader refuses an
// expired link without contacting anyone"), one whose clock runs behind
// asks, and the sharer refuses.
func TestClockSkewShareExpiry(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	clk := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := openReg(t, t.TempDir(), st, clk)
	item := importBytes(t, st, randBytes(9<<10, 7), 4<<10)
	s, err := r.Create(ctx, Share{Root: item.Root, Expires: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	link := Link{Root: s.Root, Expires: s.Expires}

	tests := []struct {
		name        string
		sharerLater time.Duration // the sharer's clock, from creation
		friendSkew  time.Duration // the friend's clock against the sharer's
		friendTries bool          // the friend's reader accepts the link
		served      bool          // the sharer serves it
	}{
		{"both clocks agree, before expiry", 59 * time.Minute, 0, true, true},
		{"friend an hour ahead refuses early", 30 * time.Minute, time.Hour, false, true},
		{"friend a day ahead refuses at once", 0, 24 * time.Hour, false, true},
		{"friend a day behind asks, sharer has stopped", 61 * time.Minute, -24 * time.Hour, true, false},
		{"friend an hour behind asks, sharer has stopped", 90 * time.Minute, -time.Hour, true, false},
	}
	base := clk.Now()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.Add(base.Add(tc.sharerLater).Sub(clk.Now()))
			friendNow := clk.Now().Add(tc.friendSkew)
			if got := !link.Expired(friendNow); got != tc.friendTries {
				t.Errorf("friend's reader accepts the link: %v, want %v", got, tc.friendTries)
			}
			if got := r.Active(item.Root); got != tc.served {
				t.Errorf("sharer serves: %v, want %v", got, tc.served)
			}
		})
	}
}

package cloud

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Clocks (issue 9, item 5; docs/RELIABILITY.md). Membership does not
// depend on agreeing clocks: a roster is ordered by its version, never by
// its times, so devices whose clocks are an hour or a day apart converge on
// the same roster. An invite's expiry is decided by the inviter's clock
// when it is redeemed; the joiner also refuses a code that is expired by
// its own clock, before dialling (docs/CLOUD.md), so a joiner whose clock
// runs ahead by more than the invite's lifetime needs a longer --ttl.

func TestClockSkewRosterConverges(t *testing.T) {
	for _, skew := range []time.Duration{time.Hour, 24 * time.Hour, -24 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			real := time.Now
			ahead := func() time.Time { return time.Now().Add(skew) }
			behind := func() time.Time { return time.Now().Add(-skew) }
			a := newAdmin(t, "laptop", real)
			// b's clock runs skew ahead of a's, c's skew behind: both
			// join with invites long enough to be valid on every clock.
			b := joinWithClock(t, a, "nas", true, ahead)
			c := joinWithClock(t, a, "phone", false, behind)
			d := joinWithClock(t, b, "tablet", false, behind) // invited by the skewed admin
			all := []*device{a, b, c, d}
			eventually(t, 10*time.Second, "rosters did not converge after the joins", func() bool { return sameRoster(all) })

			// The skewed admin revokes one device, the true-clock admin
			// another: every device ends with both revocations.
			if _, err := b.svc.Revoke("phone"); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "a never learned b's revocation", func() bool { return a.svc.State().IsRevoked(c.h.ID()) })
			if _, err := a.svc.Revoke("tablet"); err != nil {
				t.Fatal(err)
			}
			live := []*device{a, b}
			eventually(t, 10*time.Second, "a and b did not converge on both revocations", func() bool {
				return sameRoster(live) && b.svc.State().IsRevoked(d.h.ID()) && b.svc.State().IsRevoked(c.h.ID())
			})
			// A revocation stamped in the future (b's clock ahead) or the
			// past counts the same: the revoked device is gated off.
			if a.svc.Gate(c.h.ID()) || b.svc.Gate(d.h.ID()) {
				t.Error("a revoked device passes the gate on a device with another clock")
			}
		})
	}
}

// joinWithClock is join with a device clock now and an invite that stays
// valid for two days on any of the test's clocks.
func joinWithClock(t *testing.T, inviter *device, name string, admin bool, now func() time.Time) *device {
	t.Helper()
	h, _ := newHost(t)
	_, code, err := inviter.svc.NewInvite(72*time.Hour, admin)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Join(testCtx(t), h, filepath.Join(t.TempDir(), name), code, JoinOptions{Name: name, Admin: admin, Now: now})
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	return startService(t, h, st, now)
}

func sameRoster(ds []*device) bool {
	v := ds[0].svc.State().Roster()
	for _, d := range ds[1:] {
		r := d.svc.State().Roster()
		if r.Version != v.Version || len(r.Members) != len(v.Members) {
			return false
		}
	}
	return true
}

// TestClockSkewInviteExpiry: the inviter's clock decides at redemption; a
// joiner's clock only adds its own early refusal.
func TestClockSkewInviteExpiry(t *testing.T) {
	clk := &clock{t: time.Now()}
	a := newAdmin(t, "laptop", clk.Now)
	tests := []struct {
		name        string
		inviterLate time.Duration // a's clock moves on this much before the join
		joinerSkew  time.Duration // the joiner's clock against a's
		wantErr     error
	}{
		{"on time", 14 * time.Minute, 0, nil},
		{"joiner a day behind, on time at the inviter", 10 * time.Minute, -24 * time.Hour, nil},
		{"expired at the inviter though fresh for a joiner a day behind", 16 * time.Minute, -24 * time.Hour, ErrInviteExpired},
		{"joiner an hour ahead refuses a fresh invite itself", time.Minute, time.Hour, ErrInviteExpired},
		{"joiner a day ahead refuses a fresh invite itself", time.Minute, 24 * time.Hour, ErrInviteExpired},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, code, err := a.svc.NewInvite(15*time.Minute, false)
			if err != nil {
				t.Fatal(err)
			}
			clk.Add(tc.inviterLate)
			joinerNow := clk.Now().Add(tc.joinerSkew)
			h, _ := newHost(t)
			_, err = Join(testCtx(t), h, filepath.Join(t.TempDir(), "j"), code,
				JoinOptions{Name: fmt.Sprintf("j%d", i), Now: func() time.Time { return joinerNow }})
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("join: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

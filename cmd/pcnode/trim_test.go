package main

import "testing"

func TestShouldTrim(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		objects, free, live uint64
		want                bool
	}{
		{objects: 60 * mib, free: 2 * mib, live: 55 * mib, want: false}, // idle, collected
		{objects: 150 * mib, free: 0, live: 60 * mib, want: true},       // garbage after a sync
		{objects: 60 * mib, free: 40 * mib, live: 58 * mib, want: true}, // free spans not released
		{objects: 90 * mib, free: 1 * mib, live: 60 * mib, want: false}, // under the slack
		{objects: 0, free: 0, live: 0, want: false},
	} {
		if got := shouldTrim(tc.objects, tc.free, tc.live); got != tc.want {
			t.Errorf("shouldTrim(objects %d MiB, free %d MiB, live %d MiB) = %v, want %v",
				tc.objects/mib, tc.free/mib, tc.live/mib, got, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"runtime"
	"testing"
)

func TestShouldTrim(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		objects, free, live uint64
		want                bool
	}{
		{objects: 60 * mib, free: 2 * mib, live: 55 * mib, want: false}, // idle, collected
		{objects: 150 * mib, free: 0, live: 60 * mib, want: true},       // garbage after a sync
		{objects: 60 * mib, free: 40 * mib, live: 58 * mib, want: true}, // free spans not released
		{objects: 70 * mib, free: 1 * mib, live: 60 * mib, want: false}, // under the slack
		{objects: 70 * mib, free: 6 * mib, live: 60 * mib, want: true},  // free spans and garbage together
		{objects: 0, free: 0, live: 0, want: false},
	} {
		if got := shouldTrim(tc.objects, tc.free, tc.live); got != tc.want {
			t.Errorf("shouldTrim(objects %d MiB, free %d MiB, live %d MiB) = %v, want %v",
				tc.objects/mib, tc.free/mib, tc.live/mib, got, tc.want)
		}
	}
}

// TestTrimCHeap checks that a cgo build on glibc finds malloc_trim (else
// the C heap is never trimmed and an idle home server keeps what pebble
// freed), and that a call is harmless.
func TestTrimCHeap(t *testing.T) {
	_, supported := trimCHeap()
	maps, err := os.ReadFile("/proc/self/maps")
	glibc := err == nil && runtime.GOOS == "linux" && bytes.Contains(maps, []byte("/libc.so.6"))
	t.Logf("glibc %v, malloc_trim found %v", glibc, supported)
	if glibc && !supported {
		t.Error("linked against glibc, but malloc_trim was not found")
	}
	if !glibc && supported {
		t.Log("malloc_trim found without glibc (another C library that has it)")
	}
	if _, again := trimCHeap(); again != supported {
		t.Errorf("supported changed between calls: %v, then %v", supported, again)
	}
}

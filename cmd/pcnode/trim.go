package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// trimEvery is how often the daemon looks for heap memory to give back.
const trimEvery = 30 * time.Second

// trimSlackBytes is how much heap beyond the live data (garbage not yet
// collected plus free, unreleased spans) the daemon keeps before it
// collects and hands the rest back to the system. With 32 MiB the home
// server, just synced, idled with about 24 MiB of free spans unreleased
// (143 MiB RSS); with 16 MiB at 106-107 MiB, idle CPU no higher (0.67-0.87%
// of a core, 0.85% before).
const trimSlackBytes = 16 << 20

// trimMemory returns heap memory to the system after bursts of work. Go
// collects an idle process only every two minutes and its scavenger
// returns free memory slowly, so a home server idled at several times its
// live heap after a large initial sync. One forced collection when the
// heap holds trimSlackBytes more than the live data; an idle daemon, whose
// heap then stays near its live size, pays nothing more. The C heap, where
// pebble keeps its memtables and block cache, is trimmed on every tick
// (trimCHeap): glibc keeps freed memory resident otherwise.
func trimMemory(ctx context.Context, log *slog.Logger) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		var v [3]uint64
		for i, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return // this runtime does not offer it
			}
			v[i] = s.Value.Uint64()
		}
		goTrim := shouldTrim(v[0], v[1], v[2])
		if goTrim {
			debug.FreeOSMemory()
		}
		// The C heap (pebble's memtables and block cache) on every tick:
		// malloc_trim took 40 µs to 0.7 ms in an idle home server.
		cTrim, _ := trimCHeap()
		if goTrim || cTrim {
			log.Debug("returned memory to the system", "go_heap", goTrim, "c_heap", cTrim,
				"objects_bytes", v[0], "free_bytes", v[1], "live_bytes", v[2])
		}
	}
}

// shouldTrim reports whether the heap (objects, live or garbage, plus free
// spans not yet released) exceeds the live data by trimSlackBytes.
func shouldTrim(objects, free, live uint64) bool {
	return objects+free >= live+trimSlackBytes
}

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

// trimFreeBytes is how much free, unreleased heap the daemon keeps before
// it hands it back to the system at once.
const trimFreeBytes = 32 << 20

// trimMemory returns free heap memory to the system after bursts of work.
// Go's background scavenger returns it slowly (a home server measured
// 310 MiB resident an idle minute after a large initial sync, about half
// of it free heap, and 116 MiB after a restart); a daemon that idles for
// days should not hold its peak. One forced collection every trimEvery
// at most, and only when that much is free: idle CPU stays unmeasurable.
func trimMemory(ctx context.Context, log *slog.Logger) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return // this runtime does not offer it
		}
		if free := sample[0].Value.Uint64(); free >= trimFreeBytes {
			debug.FreeOSMemory()
			log.Debug("returned free heap memory to the system", "free_bytes", free)
		}
	}
}

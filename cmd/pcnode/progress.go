package main

import (
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/pcnode/pcnode/node/api"
)

// progress returns a ProgressFunc that draws a bar on stderr and a
// function that finishes the bar. Both are no-ops unless stderr is a
// terminal and the output is for a person (no --json, no -q), so scripts
// and logs never see control characters.
func (a *app) progress(desc string, bytes, quiet bool) (api.ProgressFunc, func()) {
	if quiet || a.json || !isTerminal(a.stderr) {
		return nil, func() {}
	}
	return newBar(a.stderr, desc, bytes)
}

func newBar(w io.Writer, desc string, bytes bool) (api.ProgressFunc, func()) {
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(bytes),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
	)
	var mu sync.Mutex
	max := int64(-1)
	fn := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if total > 0 && total != max {
			max = total
			bar.ChangeMax64(total)
		}
		_ = bar.Set64(done)
	}
	finish := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = bar.Finish()
		_ = bar.Clear()
	}
	return fn, finish
}

package folder

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher turns fsnotify events into debounced scan requests. fsnotify
// watches one directory at a time, so every directory the scanner finds is
// added; a directory created later is added by the scan its creation
// triggers.
type watcher struct {
	f         *Folder
	w         *fsnotify.Watcher
	mu        sync.Mutex
	in        map[string]bool
	closeOnce sync.Once
}

func newWatcher(f *Folder) (*watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &watcher{f: f, w: w, in: map[string]bool{}}, nil
}

func (w *watcher) addDirs(dirs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range dirs {
		if w.in[d] {
			continue
		}
		if err := w.w.Add(d); err != nil {
			w.f.log.Debug("watch", "dir", d, "err", err)
			continue
		}
		w.in[d] = true
	}
}

func (w *watcher) run(ctx context.Context) {
	var timer *time.Timer
	var fire <-chan time.Time
	internalDir := filepath.Join(w.f.root, stateDir)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.w.Events:
			if !ok {
				return
			}
			if strings.HasPrefix(ev.Name, internalDir) || strings.HasPrefix(filepath.Base(ev.Name), tmpPrefix) {
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				w.mu.Lock()
				delete(w.in, ev.Name)
				w.mu.Unlock()
			}
			if timer == nil {
				timer = time.NewTimer(w.f.cfg.Debounce)
			} else {
				timer.Reset(w.f.cfg.Debounce)
			}
			fire = timer.C
		case err, ok := <-w.w.Errors:
			if !ok {
				return
			}
			w.f.log.Warn("watch error; scanning", "err", err)
			w.f.requestScan()
		case <-fire:
			fire = nil
			w.f.requestScan()
		}
	}
}

func (w *watcher) close() {
	w.closeOnce.Do(func() { _ = w.w.Close() })
}

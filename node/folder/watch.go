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
	// own holds the paths a pull is about to rename into place, with
	// when: the event of that rename is the folder's own doing and needs
	// no scan (a 100,000-file pull would otherwise rescan the folder
	// after each of its batches).
	own map[string]time.Time
}

// ownExpiry bounds how long an expected event is waited for: past it a
// later event at that path is the user's again.
const ownExpiry = 10 * time.Second

// expect notes that the folder itself is about to create path (a
// rename into place).
func (w *watcher) expect(path string) {
	w.mu.Lock()
	w.own[path] = time.Now()
	w.mu.Unlock()
}

// mine reports whether ev is the event of an expected rename, and
// forgets the expectation.
func (w *watcher) mine(ev fsnotify.Event) bool {
	if !ev.Has(fsnotify.Create) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.own[ev.Name]
	if !ok {
		return false
	}
	delete(w.own, ev.Name)
	if len(w.own) > 0 && len(w.own)%1024 == 0 {
		for p, t := range w.own {
			if time.Since(t) > ownExpiry {
				delete(w.own, p)
			}
		}
	}
	return time.Since(at) <= ownExpiry
}

func newWatcher(f *Folder) (*watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &watcher{f: f, w: w, in: map[string]bool{}, own: map[string]time.Time{}}, nil
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
			if strings.HasPrefix(ev.Name, internalDir) || strings.HasPrefix(filepath.Base(ev.Name), tmpPrefix) || w.mine(ev) {
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

package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoTimeout bounds make demo: three daemons start, pair, sync and share
// in about ten seconds on an idle machine.
const demoTimeout = 4 * time.Minute

// TestDemo runs scripts/demo.sh (make demo) as the README promises it
// works: it must succeed, say what it did step by step, print the
// dashboard's address, and leave no daemon and no directory behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	bin := pcnodeBinary(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(srcRoot(), "scripts", "demo.sh"), bin)
	cmd.Dir = srcRoot()
	cmd.Env = append(procEnv(), "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := out.String()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, text)
	}
	for _, want := range []string{
		"pair the laptop with the home server",
		"joined cloud",
		"the server keeps a receive-only replica",
		"in sync",
		"an edit on the laptop reached the server",
		"pcnode://share/",
		"the home server holds the share too",
		"laptop stopped",
		"the friend's copy is byte-identical",
		"dashboard: http://127.0.0.1:",
		"demo: done",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q\n%s", want, text)
		}
	}
	// Nothing left behind: the work directory is gone, and no process
	// runs from it.
	left, err := filepath.Glob(filepath.Join(tmp, "pcnode-demo.*"))
	if err != nil || len(left) > 0 {
		t.Errorf("demo left %v (%v)", left, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(tmp)) {
			t.Errorf("a process from the demo still runs: %s: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

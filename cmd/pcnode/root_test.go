package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pcnode/pcnode/node"
)

// runCLI runs the CLI in this process with a home under a temp dir.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("PCNODE_HOME", filepath.Join(t.TempDir(), "home"))
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stderr     string
		jsonError  string // with --json: the error object's message, else no stdout
		wantStdout string
	}{
		{args: []string{"version"}, code: exitOK, wantStdout: "pcnode "},
		{args: []string{}, code: exitUsage, stderr: "missing command"},
		{args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`},
		{args: []string{"cat"}, code: exitUsage, stderr: "pcnode cat needs CID"},
		{args: []string{"cat", "a", "b"}, code: exitUsage, stderr: "takes 1 argument(s), got 2"},
		{args: []string{"pin"}, code: exitUsage, stderr: "needs a subcommand"},
		{args: []string{"pin", "frob"}, code: exitUsage, stderr: `unknown command "frob" for "pcnode pin"`},
		{args: []string{"status", "--no-such-flag"}, code: exitUsage, stderr: "unknown flag: --no-such-flag"},
		{args: []string{"--json", "cat", "zzz"}, code: exitError, stderr: `invalid CID "zzz"`, jsonError: `invalid CID "zzz"`},
		{args: []string{"--json", "status"}, code: exitError, stderr: "run pcnode init", jsonError: "no pcnode home at "},
		{args: []string{"status"}, code: exitError, stderr: "no pcnode home at "},
		{args: []string{"peers", "ls"}, code: exitError, stderr: "no pcnode home at "},
		{args: []string{"--json", "peers", "connect", "/nope"}, code: exitError, stderr: `invalid multiaddr "/nope"`, jsonError: "invalid multiaddr"},
		{args: []string{"--log-level", "loud", "status"}, code: exitUsage, stderr: `bad --log-level "loud"`},
		{args: []string{"devices"}, code: exitUsage, stderr: "needs a subcommand"},
		{args: []string{"join"}, code: exitUsage, stderr: "pcnode join needs CODE"},
		{args: []string{"--json", "join", "hello"}, code: exitError, stderr: "not a pcnode invite code", jsonError: "not a pcnode invite code"},
		{args: []string{"join", "pcnode1aaaa"}, code: exitError, stderr: "code too short"},
		{args: []string{"invite", "--ttl", "0s"}, code: exitUsage, stderr: "--ttl 0s: want more than 0"},
		{args: []string{"invite", "--ttl", "48h"}, code: exitUsage, stderr: "at most 24h"},
		{args: []string{"invite"}, code: exitError, stderr: "no pcnode home at "},
		{args: []string{"cloud", "show"}, code: exitError, stderr: "no pcnode home at "},
		{args: []string{"dns", "ds"}, code: exitError, stderr: "no pcnode home at "},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tc.stderr)
			}
			switch {
			case tc.jsonError != "":
				v, err := oneJSONObject([]byte(stdout))
				if err != nil {
					t.Fatal(err)
				}
				if msg, _ := v["error"].(string); !strings.Contains(msg, tc.jsonError) {
					t.Errorf("stdout error %q lacks %q", msg, tc.jsonError)
				}
			case tc.wantStdout != "":
				if !strings.Contains(stdout, tc.wantStdout) {
					t.Errorf("stdout %q lacks %q", stdout, tc.wantStdout)
				}
			case code != exitOK && stdout != "":
				t.Errorf("failed command printed on stdout: %q", stdout)
			}
		})
	}
}

func TestVersionJSON(t *testing.T) {
	code, stdout, _ := runCLI(t, "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Errorf("version %+v", v)
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		".pcnode":         ".pcnode",
		"/home/a/.pcnode": "/home/a/.pcnode",
		"my home":         "'my home'",
		"it's":            `'it'\''s'`,
		"":                "''",
	}
	for in, want := range tests {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	fn, finish := newBar(&buf, "adding", true)
	fn(0, 0)   // total unknown: a spinner
	fn(512, 0) // still unknown
	fn(1024, 4096)
	fn(4096, 4096)
	finish()
	if !strings.Contains(buf.String(), "adding") {
		t.Errorf("bar output %q lacks its description", buf.String())
	}

	// Not a terminal: no bar, and the finish is safe to call.
	a := &app{stderr: &buf}
	fn, finish = a.progress("adding", true, false)
	if fn != nil {
		t.Error("progress on a non-terminal returned a bar")
	}
	finish()
}

func TestLookupJSON(t *testing.T) {
	v, err := oneJSONObject([]byte(`{"id":"x","addrs":["/a","/b"],"n":3,"ok":true,"sub":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"id", "x", true},
		{"addrs.1", "/b", true},
		{"addrs.2", "", false},
		{"addrs", `["/a","/b"]`, true},
		{"n", "3", true},
		{"ok", "true", true},
		{"sub.k", "v", true},
		{"missing", "", false},
	}
	for _, tc := range tests {
		got, ok := lookupJSON(v, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("lookupJSON(%q) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := oneJSONObject([]byte(`{"a":1}{"b":2}`)); err == nil {
		t.Error("two objects accepted")
	}
	if _, err := oneJSONObject([]byte(`[1]`)); err == nil {
		t.Error("an array accepted")
	}
}

func TestHomeBusy(t *testing.T) {
	// A process that has exited: its pid is free (until reused).
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Skip("no true command:", err)
	}
	tests := []struct {
		name    string
		content string
		write   bool
		want    bool
	}{
		{"no lock file", "", false, false},
		{"released (empty)", "", true, false},
		{"held by a live process", strconv.Itoa(os.Getpid()) + "\n", true, true},
		{"left by a dead process", strconv.Itoa(done.Process.Pid) + "\n", true, false},
		{"garbage", "not a pid\n", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if tc.write {
				if err := os.WriteFile(filepath.Join(home, node.LockFile), []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := homeBusy(home); got != tc.want {
				t.Errorf("homeBusy = %v, want %v", got, tc.want)
			}
		})
	}
}

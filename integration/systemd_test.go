package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// systemdAnalyze finds systemd-analyze (scripts/install-systemd-analyze.sh
// installs it). Without it the test skips, except in CI (CI=true) where a
// missing tool is a broken setup.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" || os.Getenv("PCNODE_REQUIRE_TOOLS") == "1" {
		t.Fatal("systemd-analyze not found: CI must install it (scripts/install-systemd-analyze.sh)")
	}
	t.Skip("systemd-analyze not found; run scripts/install-systemd-analyze.sh")
	return ""
}

var execStartRE = regexp.MustCompile(`(?m)^ExecStart=(\S+)(.*)$`)

// verifyUnit runs systemd-analyze verify on unit (its text) saved as
// pcnode.service in a temp dir, and returns its output and error.
func verifyUnit(t *testing.T, sa, unit string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pcnode.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", path)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// TestSystemdUnit: contrib/pcnode.service passes systemd-analyze verify
// with no warning (its ExecStart pointed at the built binary, as verify
// checks that the command exists), the daemon accepts the unit's command
// line, and the check does catch a broken unit.
func TestSystemdUnit(t *testing.T) {
	sa := systemdAnalyze(t)
	b, err := os.ReadFile(filepath.Join(srcRoot(), "contrib", "pcnode.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	m := execStartRE.FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("contrib/pcnode.service has no ExecStart")
	}
	bin := pcnodeBinary(t)
	local := execStartRE.ReplaceAllString(unit, "ExecStart="+bin+"$2")
	if out, err := verifyUnit(t, sa, local); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "User=pcnode", "StateDirectory=pcnode", "ProtectSystem=strict", "ProtectHome=true",
		"PrivateTmp=true", "NoNewPrivileges=true", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "RestrictAddressFamilies=",
		"SystemCallFilter=@system-service", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(unit, "\n"+want) {
			t.Errorf("the unit lacks %q", want)
		}
	}

	// The arguments of ExecStart parse (an unknown flag would fail even
	// with --help).
	args := append(strings.Fields(m[2]), "--help")
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Errorf("pcnode %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	// The check has teeth: an unknown key and a missing binary are reported.
	if out, _ := verifyUnit(t, sa, strings.Replace(local, "[Service]\n", "[Service]\nProtectBogus=yes\n", 1)); !strings.Contains(out, "ProtectBogus") {
		t.Errorf("verify did not report an unknown key: %q", out)
	}
	if _, err := verifyUnit(t, sa, execStartRE.ReplaceAllString(unit, "ExecStart=/nonexistent/pcnode$2")); err == nil {
		t.Error("verify accepted a missing ExecStart binary")
	}
}

package node

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pcnode/pcnode/node/api"
)

func TestInit(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	if err := Init(home, InitOptions{Profile: ProfileLocal, APIListen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{KeyFile, api.TokenFile, ConfigFile} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(filepath.Join(home, DataDir)); err != nil || !fi.IsDir() {
		t.Errorf("data dir: %v", err)
	}
	k, err := LoadKey(home)
	if err != nil {
		t.Fatal(err)
	}
	if k.Type().String() != "Ed25519" {
		t.Errorf("key type %v", k.Type())
	}
	tok, err := LoadToken(home)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q, %v", tok, err)
	}
	s, err := LoadSettings(home)
	if err != nil {
		t.Fatal(err)
	}
	if s.Profile != ProfileLocal || s.API.Listen != "127.0.0.1:0" {
		t.Errorf("settings %+v", s)
	}

	// A second Init refuses; Force replaces key and token.
	err = Init(home, InitOptions{})
	if !errors.Is(err, ErrAlreadyInitialized) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second Init: %v", err)
	}
	if err := Init(home, InitOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	k2, _ := LoadKey(home)
	if k2.Equals(k) {
		t.Error("Force kept the old key")
	}
	tok2, _ := LoadToken(home)
	if tok2 == tok {
		t.Error("Force kept the old token")
	}
}

func TestInitBadProfile(t *testing.T) {
	home := t.TempDir()
	if err := Init(home, InitOptions{Profile: "wan"}); err == nil {
		t.Fatal("Init accepted profile wan")
	}
	if _, err := os.Stat(filepath.Join(home, KeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("a failed Init left a key behind")
	}
}

func TestNotInitialized(t *testing.T) {
	home := t.TempDir()
	for name, f := range map[string]func() error{
		"key":      func() error { _, err := LoadKey(home); return err },
		"token":    func() error { _, err := LoadToken(home); return err },
		"settings": func() error { _, err := LoadSettings(home); return err },
	} {
		if err := f(); !errors.Is(err, ErrNotInitialized) || !strings.Contains(err.Error(), "pcnode init") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLockHome(t *testing.T) {
	home := t.TempDir()
	l, err := lockHome(home)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockHome(home)
	if !errors.Is(err, ErrHomeLocked) {
		t.Fatalf("second lock: %v", err)
	}
	want := "is in use by another pcnode (pid " + itoa(os.Getpid()) + "): stop it or use its API"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	l.unlock()
	l.unlock() // idempotent
	l2, err := lockHome(home)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.unlock()
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDefaultHome(t *testing.T) {
	tests := []struct {
		name, pcHome, xdg, want string
	}{
		{"PCNODE_HOME wins", "/srv/pc", "/xdg", "/srv/pc"},
		{"XDG", "", "/xdg", "/xdg/pcnode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PCNODE_HOME", tt.pcHome)
			t.Setenv("XDG_DATA_HOME", tt.xdg)
			got, err := DefaultHome()
			if err != nil || got != tt.want {
				t.Errorf("DefaultHome = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("fallback", func(t *testing.T) {
		t.Setenv("PCNODE_HOME", "")
		t.Setenv("XDG_DATA_HOME", "")
		t.Setenv("HOME", "/home/u")
		got, err := DefaultHome()
		if err != nil || !strings.HasPrefix(got, "/home/u/") || !strings.HasSuffix(got, "pcnode") {
			t.Errorf("DefaultHome = %q, %v", got, err)
		}
	})
}

package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/sys/unix"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
)

// Files and directories inside a node's home.
const (
	ConfigFile = "config.toml" // settings, see docs/CONFIG.md
	KeyFile    = "device.key"  // libp2p Ed25519 private key (crypto.MarshalPrivateKey), mode 0600
	DataDir    = "data"        // the block store
	LockFile   = "lock"        // flock held by the process that has the home open for writing
	PIDFile    = "daemon.pid"  // pid of a running daemon
	CloudDir   = "cloud"       // the cloud's roster, secret and (admins) key: see node/cloud
	DNSKeyFile = "dns.key"     // the served zone's DNSSEC key (PEM PKCS #8), mode 0600, made on first use
	PeersFile  = "peers.json"  // last-known addresses of sibling devices
	// api.APIFile ("api") and api.TokenFile ("api.token") complete the set.
)

var (
	// ErrNotInitialized is returned when a home has no config or key;
	// `pcnode init` creates them.
	ErrNotInitialized = errors.New("not initialised")
	// ErrAlreadyInitialized is returned by Init for a home that already
	// holds a config or a key.
	ErrAlreadyInitialized = errors.New("already initialised")
	// ErrHomeLocked is returned by Start when another process has the home
	// open.
	ErrHomeLocked = errors.New("home is in use by another pcnode")
	// ErrHasCloud is returned by Join for a home that already belongs to a
	// cloud.
	ErrHasCloud = errors.New("home already belongs to a cloud")
)

// DefaultHome returns the home directory to use when none is given:
// $PCNODE_HOME if set, else $XDG_DATA_HOME/pcnode, else
// ~/Library/Application Support/pcnode on macOS and ~/.local/share/pcnode
// elsewhere. It creates nothing.
func DefaultHome() (string, error) {
	if h := os.Getenv("PCNODE_HOME"); h != "" {
		return filepath.Abs(h)
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "pcnode"), nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("node: default home: %w (set PCNODE_HOME)", err)
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(u, "Library", "Application Support", "pcnode"), nil
	}
	return filepath.Join(u, ".local", "share", "pcnode"), nil
}

// InitOptions says how Init creates a home. The zero value creates a home
// for the default profile.
type InitOptions struct {
	// Profile is "default" (public-Internet ready) or "local" (loopback
	// only, for tests and demos). Default "default".
	Profile string
	// APIListen sets api.listen in the new config. Default 127.0.0.1:5480.
	APIListen string
	// Force replaces an existing config, key and token. The data directory
	// is kept; an existing cloud directory is moved aside to
	// cloud.replaced-<unix time> (its roster names the old key). Default
	// false: Init refuses an initialised home.
	Force bool
	// Name is the device's name in its cloud (the name key). Default: the
	// host name.
	Name string
	// Role is "device" or "server" (the role key). Default "device".
	Role string
	// NoCloud skips creating a cloud, for a device that will join one
	// (Join). Default false: Init creates a new cloud with this device as
	// its only member and admin.
	NoCloud bool
}

// defaultDeviceName is the host name, or "pcnode" when it is unusable as
// a member name.
func defaultDeviceName() string {
	h, err := os.Hostname()
	if err != nil || checkDeviceName(h) != nil {
		return "pcnode"
	}
	return h
}

// Init creates a node's home: the directory (0700), a new device key, a new
// API token, a new cloud (unless opts.NoCloud) and config.toml for the
// chosen profile. It needs no network and refuses, with
// ErrAlreadyInitialized, a home that already has a config or key unless
// opts.Force is set.
func Init(home string, opts InitOptions) error {
	if home == "" {
		return fmt.Errorf("node: init: empty home directory")
	}
	s := DefaultSettings()
	if opts.Profile != "" {
		if err := s.Set("profile", opts.Profile); err != nil {
			return fmt.Errorf("node: init %s: %w", home, err)
		}
	}
	if opts.APIListen != "" {
		if err := s.Set("api.listen", opts.APIListen); err != nil {
			return fmt.Errorf("node: init %s: %w", home, err)
		}
	}
	if opts.Name == "" {
		opts.Name = defaultDeviceName()
	}
	if err := s.Set("name", opts.Name); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	if err := s.Set("role", opts.Role); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	if !opts.Force {
		for _, f := range []string{ConfigFile, KeyFile} {
			if _, err := os.Stat(filepath.Join(home, f)); err == nil {
				return fmt.Errorf("node: init %s: %w (it has %s; use --force to replace the key and config)", home, ErrAlreadyInitialized, f)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(home, DataDir), 0o700); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	// The lock keeps a running daemon from seeing a half-written home.
	l, err := lockHome(home)
	if err != nil {
		return fmt.Errorf("node: init: %w", err)
	}
	defer l.unlock()

	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fmt.Errorf("node: init %s: key: %w", home, err)
	}
	kb, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("node: init %s: key: %w", home, err)
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("node: init %s: token: %w", home, err)
	}
	if err := writeFileAtomic(filepath.Join(home, KeyFile), kb, 0o600); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	if err := writeFileAtomic(filepath.Join(home, api.TokenFile), []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	cdir := filepath.Join(home, CloudDir)
	if _, err := os.Stat(cdir); err == nil {
		// Only with Force: the old roster names the old key, so the
		// cloud is kept aside (it may hold the only copy of a cloud key).
		aside := fmt.Sprintf("%s.replaced-%d", cdir, time.Now().Unix())
		if err := os.Rename(cdir, aside); err != nil {
			return fmt.Errorf("node: init %s: move old cloud aside: %w", home, err)
		}
	}
	if !opts.NoCloud {
		if _, err := cloud.CreateAs(cdir, opts.Name, cloud.Role(s.Role), priv); err != nil {
			return fmt.Errorf("node: init %s: %w", home, err)
		}
	}
	if err := s.Save(home); err != nil {
		return fmt.Errorf("node: init %s: %w", home, err)
	}
	return nil
}

// LoadKey reads the device key from home.
func LoadKey(home string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(filepath.Join(home, KeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("node: load key %s: %w (run pcnode init)", home, ErrNotInitialized)
	}
	if err != nil {
		return nil, fmt.Errorf("node: load key %s: %w", home, err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("node: load key %s: %w", filepath.Join(home, KeyFile), err)
	}
	return k, nil
}

// LoadToken reads the API token from home.
func LoadToken(home string) (string, error) {
	b, err := os.ReadFile(filepath.Join(home, api.TokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node: load token %s: %w (run pcnode init)", home, ErrNotInitialized)
	}
	if err != nil {
		return "", fmt.Errorf("node: load token %s: %w", home, err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 32 {
		return "", fmt.Errorf("node: load token %s: token too short (%d characters); run pcnode init --force", home, len(t))
	}
	return t, nil
}

// homeLock is an exclusive flock on <home>/lock. flock locks belong to the
// open file, so a second open in the same process is refused too.
type homeLock struct{ f *os.File }

func lockHome(home string) (*homeLock, error) {
	p := filepath.Join(home, LockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", home, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := os.ReadFile(p); rerr == nil {
				if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					pid = strconv.Itoa(n)
				}
			}
			return nil, fmt.Errorf("%w: home %s is in use by another pcnode (pid %s): stop it or use its API", ErrHomeLocked, home, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", home, err)
	}
	// The pid is informational only: the flock is the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &homeLock{f: f}, nil
}

func (l *homeLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}

// writeFileAtomic writes b to a temporary file in the same directory,
// syncs it and renames it over path, so readers see the old or the new
// content, never a mix.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

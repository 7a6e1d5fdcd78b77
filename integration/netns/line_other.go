//go:build !linux

package netns

import (
	"errors"
	"os"
)

// Network namespaces are Linux's; elsewhere New skips (or fails in CI)
// before any of these is reached.

var errNotLinux = errors.New("the user-space delay line needs Linux")

func inNS(string, func() error) error       { return errNotLinux }
func openPacket(string) (*os.File, error)   { return nil, errNotLinux }
func lineTransient(error) bool              { return false }
func txChecksum(string, bool) (bool, error) { return false, errNotLinux }
func noIPv6(string)                         {}

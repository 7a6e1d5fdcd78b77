//go:build linux

package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inNS runs f on an OS thread of its own that has joined the network
// namespace named ns, and returns f's error. Sockets made there stay in ns
// for their whole life, whichever thread uses them later. The thread is
// locked and never unlocked, so the runtime ends it with f's goroutine:
// no other goroutine ever runs in ns, even if f fails half way.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacket opens a raw AF_PACKET socket on the interface ifname of the
// calling thread's namespace: each Read returns one frame that arrived on
// it (frames it sends are left out, PACKET_IGNORE_OUTGOING), each Write
// sends one frame out of it. The file is non-blocking, so Close wakes a
// blocked Read.
func openPacket(ifname string) (*os.File, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	// Protocol 0 receives nothing until bind names the interface, so no
	// frame of another interface slips in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return nil, fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
	}
	// 4 MiB each way absorbs a burst while the pump's goroutines wait
	// for a core (the default, about 200 KiB, is a few hundred frames).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("bind packet socket to %s: %w", ifname, err)
	}
	ok = true
	return os.NewFile(uintptr(fd), "packet:"+ifname), nil
}

// lineTransient: a packet socket reports ENETDOWN once when its
// interface goes down (Cut) and works again when it comes back (Heal).
func lineTransient(err error) bool { return errors.Is(err, syscall.ENETDOWN) }

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct{ cmd, data uint32 }

// ifreqData is struct ifreq with ifr_data set (40 bytes on 64-bit).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// txChecksum sets the transmit checksum offload of ifname in the calling
// thread's namespace and reports whether it was on. With it off, the
// kernel checksums and segments (GSO, TSO, UDP GSO) every packet in
// software before the device sends it, so a packet socket on the other
// end reads complete frames of at most the MTU that it can send on as
// they are, and loss hits single packets as on a wire.
func txChecksum(ifname string, on bool) (was bool, err error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	do := func(cmd, data uint32) (uint32, error) {
		v := &ethtoolValue{cmd: cmd, data: data}
		var ifr ifreqData
		copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
		ifr.data = unsafe.Pointer(v)
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(v)
		if e != 0 {
			return 0, e
		}
		return v.data, nil
	}
	cur, err := do(unix.ETHTOOL_GTXCSUM, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool get tx checksumming of %s: %w", ifname, err)
	}
	var want uint32
	if on {
		want = 1
	}
	if _, err := do(unix.ETHTOOL_STXCSUM, want); err != nil {
		return cur != 0, fmt.Errorf("ethtool set tx checksumming of %s: %w", ifname, err)
	}
	return cur != 0, nil
}

// noIPv6 turns IPv6 off on ifname in the calling thread's namespace, so
// that the line's own interfaces send no router solicitations or MLD
// reports into the link. Without IPv6 in the kernel there is nothing to do.
func noIPv6(ifname string) {
	_ = os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", ifname, "disable_ipv6"), []byte("1"), 0o644)
}

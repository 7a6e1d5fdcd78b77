package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/pcnode/pcnode/node/api"
	"github.com/pcnode/pcnode/node/cloud"
)

// TestMain lets scripts run "exec pcnode ...": testscript copies this test
// binary onto $PATH as pcnode, and when run under that name it is the CLI.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"pcnode": func() {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs testdata/script/*.txtar: sessions of a user at a shell.
// Every home there uses the local profile and api.listen 127.0.0.1:0.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("PCNODE_HOME", filepath.Join(env.WorkDir, "home"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitapi":   cmdWaitAPI,
			"mkrand":    cmdMkrand,
			"jsonfield": cmdJSONField,
			"waitfor":   cmdWaitFor,
			"freeport":  cmdFreePort,
			"dnsq":      cmdDNSQ,
			"mangle":    cmdMangle,
			"expire":    cmdExpire,
		},
	})
}

// apiWait bounds waitapi: a daemon under -race on a loaded 2-core machine
// takes a few seconds to start; a minute means it is not coming.
const apiWait = 60 * time.Second

// waitapi [HOME]: wait until the daemon on HOME (default $PCNODE_HOME)
// has written <home>/api and answers on it. "! waitapi" waits until no
// daemon answers there (it has stopped).
func cmdWaitAPI(ts *testscript.TestScript, neg bool, args []string) {
	home := ts.Getenv("PCNODE_HOME")
	if len(args) > 1 {
		ts.Fatalf("usage: waitapi [HOME]")
	}
	if len(args) == 1 {
		home = ts.MkAbs(args[0])
	}
	deadline := time.Now().Add(apiWait)
	for {
		_, err := api.DialHome(home)
		if !neg && err == nil {
			return
		}
		if neg && errors.Is(err, api.ErrNoDaemon) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitapi %s: still %v after %v", home, err, apiWait)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, bounded by deadline
	}
}

// mkrand FILE SIZE [SEED]: write SIZE pseudo-random bytes (suffixes k, M)
// to FILE; the same seed gives the same bytes.
func cmdMkrand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: mkrand FILE SIZE [SEED]")
	}
	n, err := parseSize(args[1])
	ts.Check(err)
	seed := uint64(1)
	if len(args) == 3 {
		seed, err = strconv.ParseUint(args[2], 10, 64)
		ts.Check(err)
	}
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	r := rand.New(rand.NewPCG(seed, seed))
	buf := make([]byte, 64<<10)
	for n > 0 {
		m := min(n, int64(len(buf)))
		for i := range buf[:m] {
			buf[i] = byte(r.Uint32())
		}
		_, err := f.Write(buf[:m])
		ts.Check(err)
		n -= m
	}
	ts.Check(f.Close())
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// jsonfield [-set VAR] KEY [REGEXP]: the last command's stdout must be
// exactly one JSON object whose field KEY (dotted; numbers index arrays:
// addrs.0) exists and, if REGEXP is given, matches it. -set VAR stores the
// value in $VAR. "! jsonfield KEY" asserts the field is absent, or does
// not match REGEXP.
func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	var setVar string
	if len(args) >= 2 && args[0] == "-set" {
		setVar, args = args[1], args[2:]
	}
	if len(args) < 1 || len(args) > 2 || (neg && setVar != "") {
		ts.Fatalf("usage: [!] jsonfield [-set VAR] KEY [REGEXP]")
	}
	v, err := oneJSONObject([]byte(ts.ReadFile("stdout")))
	ts.Check(err)
	got, ok := lookupJSON(v, args[0])
	if ok && len(args) == 2 {
		re, err := regexp.Compile(args[1])
		ts.Check(err)
		ok = re.MatchString(got)
		if !ok && !neg {
			ts.Fatalf("jsonfield %s: %q does not match %q", args[0], got, args[1])
		}
	}
	switch {
	case neg && ok:
		ts.Fatalf("jsonfield %s: unexpected %q", args[0], got)
	case !neg && !ok:
		ts.Fatalf("jsonfield %s: no such field in %s", args[0], ts.ReadFile("stdout"))
	}
	if setVar != "" {
		ts.Setenv(setVar, got)
	}
}

// oneJSONObject decodes b, which must hold exactly one JSON object.
func oneJSONObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("stdout is not a JSON object: %w\n%s", err, b)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("stdout has more than one JSON value:\n%s", b)
	}
	return v, nil
}

// lookupJSON follows a dotted path; scalars come back as their JSON text
// without quotes for strings.
func lookupJSON(v any, path string) (string, bool) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return "", false
			}
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return "", false
			}
			v = x[i]
		default:
			return "", false
		}
	}
	if s, ok := v.(string); ok {
		return s, true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

// waitFor bounds waitfor: members of a cloud find each other within
// seconds on loopback; a minute means they will not.
const waitFor = 60 * time.Second

// waitfor REGEXP COMMAND [ARGS...]: run the command (like exec) again and
// again, at most for a minute, until it succeeds and its stdout matches
// REGEXP; the last run's stdout and stderr stay for the next commands.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitfor REGEXP COMMAND [ARGS...]")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	deadline := time.Now().Add(waitFor)
	for tries := 1; ; tries++ {
		err := ts.Exec(args[1], args[2:]...)
		out := ts.ReadFile("stdout")
		if err == nil && re.MatchString(out) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitfor: %q not in the output of %s after %d tries in %v (last error: %v)",
				args[0], strings.Join(args[1:], " "), tries, waitFor, err)
		}
		time.Sleep(250 * time.Millisecond) // polling a condition, bounded by deadline
	}
}

// freeport VAR: set $VAR to a port on 127.0.0.1 that is free for both
// UDP and TCP right now (a DNS server needs both).
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		ts.Check(err)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		ts.Setenv(args[0], strconv.Itoa(port))
		return
	}
	ts.Fatalf("freeport: no port free for both TCP and UDP in 20 tries")
}

// dnsq [-tcp] [-dnssec] SERVER NAME TYPE: ask SERVER (host:port) one
// question and print the answer as dig would, one record a line after a
// header line "status: RCODE flags: ..."; so "stdout" can check it.
// "! dnsq" expects no answer at all (a timeout or refused connection).
func cmdDNSQ(ts *testscript.TestScript, neg bool, args []string) {
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	dnssec := false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-tcp":
			c.Net = "tcp"
		case "-dnssec":
			dnssec = true
		default:
			ts.Fatalf("dnsq: unknown flag %s", args[0])
		}
		args = args[1:]
	}
	if len(args) != 3 {
		ts.Fatalf("usage: [!] dnsq [-tcp] [-dnssec] SERVER NAME TYPE")
	}
	qtype, ok := dns.StringToType[strings.ToUpper(args[2])]
	if !ok {
		ts.Fatalf("dnsq: unknown type %s", args[2])
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(args[1]), qtype)
	m.SetEdns0(1232, dnssec)
	r, _, err := c.Exchange(m, args[0])
	if neg {
		if err == nil {
			ts.Fatalf("dnsq: unexpected answer %s", dns.RcodeToString[r.Rcode])
		}
		return
	}
	ts.Check(err)
	w := ts.Stdout()
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Authoritative, "aa"}, {r.Truncated, "tc"}, {r.RecursionAvailable, "ra"}, {r.AuthenticatedData, "ad"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	fmt.Fprintf(w, "status: %s flags: %s\n", dns.RcodeToString[r.Rcode], strings.Join(flags, " "))
	for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
		for _, rr := range sec {
			fmt.Fprintln(w, rr.String())
		}
	}
}

// mangle -typo|-token CODE VAR: set $VAR to a damaged copy of an invite
// code. -typo changes one character, as a mistyped code would (the
// checksum catches it before anything is dialled); -token flips a bit of
// the token and recomputes the checksum, as a forger would (only the
// inviter can tell: it knows no such token).
func cmdMangle(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || (args[0] != "-typo" && args[0] != "-token") {
		ts.Fatalf("usage: mangle -typo|-token CODE VAR")
	}
	code := args[1]
	if !strings.HasPrefix(code, cloud.CodePrefix) {
		ts.Fatalf("mangle: %q is not an invite code", code)
	}
	body := strings.ToUpper(code[len(cloud.CodePrefix):])
	if args[0] == "-typo" {
		i := len(body) / 2
		c := byte('A')
		if body[i] == 'A' {
			c = 'B'
		}
		ts.Setenv(args[2], cloud.CodePrefix+strings.ToLower(body[:i]+string(c)+body[i+1:]))
		return
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	b, err := enc.DecodeString(body)
	ts.Check(err)
	const tokenAt, sumSize = 2, 4 // docs/CLOUD.md: version, flags, token...
	if len(b) < tokenAt+cloud.TokenSize+sumSize {
		ts.Fatalf("mangle: code too short")
	}
	b[tokenAt] ^= 1
	n := len(b) - sumSize
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], crc32.MakeTable(crc32.Castagnoli)))
	ts.Setenv(args[2], cloud.CodePrefix+strings.ToLower(enc.EncodeToString(b)))
}

// expire CODE: wait until the invite code has expired (its expiry, in
// whole seconds, is in the code), at most a minute.
func cmdExpire(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: expire CODE")
	}
	inv, err := cloud.DecodeInvite(args[0], time.Time{})
	ts.Check(err)
	wait := time.Until(inv.Expires) + time.Second // DecodeInvite refuses after, not at
	if wait > time.Minute {
		ts.Fatalf("expire: the code expires in %v; use a short --ttl", wait)
	}
	if wait > 0 {
		time.Sleep(wait) // waiting for the clock is the condition itself
	}
}

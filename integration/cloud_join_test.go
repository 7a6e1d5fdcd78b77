package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pcnode/pcnode/node/api"
)

// memberWait bounds how long devices of one cloud on loopback may take to
// see a change (a connection, a roster version): they talk directly, so a
// few seconds is plenty even on a loaded machine.
const memberWait = 30 * time.Second

// newDevice is newProc for a device that will join a cloud: a home of the
// local profile with no cloud, named name in the roster when it joins.
func newDevice(t *testing.T, name string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, bin: pcnodeBinary(t), home: filepath.Join(t.TempDir(), name)}
	p.must("init", "--profile", "local", "--no-cloud", "--name", name)
	p.must("config", "set", "api.listen", "127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

// devices is `pcnode devices ls --json`.
func (p *proc) devices() []api.Device {
	p.t.Helper()
	var l struct {
		Devices []api.Device `json:"devices"`
	}
	p.mustJSON(&l, "devices", "ls")
	return l.Devices
}

// waitDevices polls p's device list until ok accepts it.
func (p *proc) waitDevices(what string, ok func(map[string]api.Device) bool) {
	p.t.Helper()
	deadline := time.Now().Add(memberWait)
	for {
		m := map[string]api.Device{}
		for _, d := range p.devices() {
			m[d.Name] = d
		}
		if ok(m) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: not within %v; devices %+v\n%s", p.name, what, memberWait, m, p.logs())
		}
		time.Sleep(200 * time.Millisecond) // polling a condition under a deadline
	}
}

func connected(name string) func(map[string]api.Device) bool {
	return func(m map[string]api.Device) bool { return m[name].Connected && !m[name].Revoked }
}

// TestCloudJoinThroughDaemons: devices join through their running daemons
// (POST /api/v1/join), a second admin invites a third device, the first
// admin learns of it by roster gossip, the second admin revokes it, and a
// restarted device finds its sibling again from remembered addresses.
func TestCloudJoinThroughDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three daemons")
	}
	a := newProc(t, "a") // init creates the cloud; a is its admin
	b := newDevice(t, "b")
	c := newDevice(t, "c")
	a.start()
	b.start()
	c.start()

	var inv api.InviteResult
	a.mustJSON(&inv, "invite", "--admin", "--ttl", "5m")
	if !strings.HasPrefix(inv.Code, "pcnode1") || !inv.Admin || time.Until(inv.Expires) < 4*time.Minute {
		t.Fatalf("invite: %+v", inv)
	}

	// b's daemon joins; it is connected to a from then on, no dialling needed.
	var ci api.CloudInfo
	b.mustJSON(&ci, "join", inv.Code, "--admin")
	if !ci.Online || !ci.Admin || ci.Members != 2 || ci.Device != "b" {
		t.Fatalf("join through the daemon: %+v", ci)
	}
	var aci api.CloudInfo
	a.mustJSON(&aci, "cloud", "show")
	if aci.ID != ci.ID {
		t.Fatalf("clouds differ: a %s, b %s", aci.ID, ci.ID)
	}
	a.waitDevices("b online", connected("b"))
	b.waitDevices("a online", connected(aci.Device))

	// b is an admin: it invites c. a hears of c through b.
	var inv2 api.InviteResult
	b.mustJSON(&inv2, "invite")
	c.mustJSON(&ci, "join", inv2.Code)
	if ci.Admin || ci.Members != 3 {
		t.Fatalf("c joined: %+v", ci)
	}
	a.waitDevices("c in a's roster", func(m map[string]api.Device) bool { _, ok := m["c"]; return ok })
	b.waitDevices("c online at b", connected("c"))

	// The admin invite was single use.
	if out, err := c.run("join", inv.Code); err == nil || !strings.Contains(err.Error(), "already belongs to a cloud") {
		t.Errorf("second join on c: %v\n%s", err, out)
	}

	// b revokes c; a learns it and neither keeps a connection to c.
	var d api.Device
	b.mustJSON(&d, "devices", "revoke", "c")
	if !d.Revoked {
		t.Fatalf("revoke: %+v", d)
	}
	gone := func(m map[string]api.Device) bool { return m["c"].Revoked && !m["c"].Connected }
	a.waitDevices("c revoked at a", gone)
	b.waitDevices("c revoked at b", gone)
	if out, err := c.run("invite"); err == nil {
		t.Errorf("revoked, non-admin c could invite: %s", out)
	}

	// a restarts and the two find each other again by the addresses they
	// remembered (whichever dials first: a sees it as remembered or inbound).
	a.stop()
	a.start()
	a.waitDevices("b online after a's restart", connected("b"))
	for _, dv := range a.devices() {
		src := strings.Join(dv.Sources, ",")
		if dv.Name == "b" && !strings.Contains(src, "remembered") && !strings.Contains(src, "inbound") {
			t.Errorf("after restart a found b by %q, want remembered or inbound", src)
		}
	}
}

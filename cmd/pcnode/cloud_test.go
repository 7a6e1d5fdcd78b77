package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/pcnode/pcnode/node/api"
)

// TestPrintDevicesPath: a relayed device names its relay by device name
// when the relay is a member, says why the path is not direct, and a
// direct one says nothing there.
func TestPrintDevicesPath(t *testing.T) {
	const server, phone, laptop = "12D3KooWServer", "12D3KooWPhone", "12D3KooWLaptop"
	ds := []api.Device{
		{Name: "laptop", ID: laptop, Role: "device", Self: true},
		{Name: "phone", ID: phone, Role: "device", Connected: true, Sources: []string{"dht"}, Path: "relayed", Relay: server,
			WhyNotDirect: "symmetric NAT detected (local port 4001 appeared as port 8275); hole punch failed: all dials failed"},
		{Name: "server", ID: server, Role: "server", Connected: true, Path: "direct", WhyNotDirect: ""},
		{Name: "tablet", ID: "12D3KooWTablet", Role: "device", Connected: true, Path: "relayed", Relay: "12D3KooWStranger", WhyNotDirect: "hole punching pending"},
	}
	var b bytes.Buffer
	printDevices(&b, ds)
	out := b.String()
	for _, re := range []string{
		`(?m)^NAME +PEER +ROLE +ONLINE +FOUND +PATH +LATENCY +WHY NOT DIRECT$`,
		`(?m)^phone +12D3KooWPhone +device +yes +dht +relayed via server +- +symmetric NAT detected \(local port 4001 appeared as port 8275\); hole punch failed: all dials failed$`,
		`(?m)^server +12D3KooWServer +server +yes +- +direct +- +-$`,
		`(?m)^tablet .* relayed via 12D3KooWStranger +- +hole punching pending$`,
		`(?m)^laptop +12D3KooWLaptop +device +self +- +- +- +-$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
}

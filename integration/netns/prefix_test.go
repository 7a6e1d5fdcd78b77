package netns

import "testing"

func TestCheckPrefix(t *testing.T) {
	cases := []struct {
		prefix string
		ok     bool
	}{
		{"192.0.2.0/24", true},
		{"198.51.100.0/24", true},
		{"203.0.113.0/24", true},
		{"198.51.100.128/25", true},
		{"203.0.113.7/24", true}, // masked to 203.0.113.0/24
		{"192.0.2.0/23", false},  // reaches past the range
		{"10.0.0.0/24", false},
		{"192.168.1.0/24", false},
		{"127.0.0.0/8", false},
		{"2001:db8::/32", false}, // documentation, but the harness is IPv4 only
		{"nonsense", false},
	}
	for _, c := range cases {
		_, err := checkPrefix(c.prefix)
		if (err == nil) != c.ok {
			t.Errorf("checkPrefix(%q) = %v, want ok %v", c.prefix, err, c.ok)
		}
	}
}

func TestNameRE(t *testing.T) {
	cases := []struct {
		name, pid string
	}{
		{"pcn123x4-home", "123"},
		{"pcn1x1-sw-lan", "1"},
		{"pcnode", ""},
		{"other123x4-home", ""},
		{"pcn12-home", ""},
	}
	for _, c := range cases {
		m := nameRE.FindStringSubmatch(c.name)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != c.pid {
			t.Errorf("%q: pid %q, want %q", c.name, got, c.pid)
		}
	}
}

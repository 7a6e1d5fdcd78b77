package node

import (
	"strings"
	"testing"
)

func TestHostLabel(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"laptop", "laptop"},
		{"Anna's Laptop", "annas-laptop"},
		{"home_server.lan", "home-server-lan"},
		{"_dnsaddr", "dnsaddr"}, // never shadows pcnode's own _names
		{"---", ""},
		{"日本", ""},
		{"x" + strings.Repeat("a", 80), "x" + strings.Repeat("a", 62)}, // 63-byte label limit
	} {
		if got := hostLabel(tt.in); got != tt.want {
			t.Errorf("hostLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

package auth_test

import (
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/auth"
)

const (
	L = auth.KindLocal
	R = auth.KindRemote
	D = auth.KindDynamic
)

type probe struct {
	k    auth.Kind
	host string
	port int
	want bool
}

func TestParseRuleAndMatch(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		probes []probe
	}{
		{"L:*:*", []probe{
			{L, "example.com", 1, true}, {L, "10.1.2.3", 65535, true}, {L, "::1", 0, true},
			{R, "127.0.0.1", 1, false}, {D, "example.com", 1, false},
			{L, "example.com", -1, false}, {L, "example.com", 65536, false},
		}},
		{"LD:10.0.0.0/8:22,80,8000-8999", []probe{
			{L, "10.9.9.9", 22, true}, {D, "10.0.0.1", 80, true}, {L, "10.0.0.1", 8000, true}, {L, "10.0.0.1", 8999, true},
			{L, "10.0.0.1", 7999, false}, {L, "10.0.0.1", 9000, false}, {L, "11.0.0.1", 22, false},
			{L, "::ffff:10.1.1.1", 22, true}, // IPv4-mapped IPv6 is the IPv4 address
			{L, "ten.example", 22, false},    // CIDR rules match IP literals only
			{R, "10.0.0.1", 22, false},
		}},
		{"ld:10.1.2.3/8:*", []probe{{L, "10.200.0.1", 5, true}, {D, "10.200.0.1", 5, true}}}, // masked; kinds in any case
		{"R:127.0.0.1:9000-9100", []probe{
			{R, "127.0.0.1", 9000, true}, {R, "127.0.0.1", 9100, true}, {R, "127.0.0.1", 9101, false},
			{R, "127.0.0.2", 9000, false}, {R, "localhost", 9000, false},
			{R, "", 9050, true}, // empty bind = loopback
			{R, "127.0.0.1", 0, false},
			{L, "127.0.0.1", 9000, false},
		}},
		{"R:[::1]:*", []probe{{R, "::1", 1, true}, {R, "[::1]", 1, true}, {R, "0:0::1", 1, true}, {R, "::2", 1, false}, {R, "", 0, true}}},
		{"LRD:[fd00::/8]:443", []probe{
			{L, "fd12::1", 443, true}, {R, "fdff:ffff::", 443, true}, {D, "[fd00::1]", 443, true}, {D, "fd00::1%eth0", 443, true},
			{L, "fe00::1", 443, false}, {L, "10.0.0.1", 443, false},
		}},
		{"L:Db.Example.COM.:5432", []probe{
			{L, "db.example.com", 5432, true}, {L, "DB.EXAMPLE.com.", 5432, true},
			{L, "x.db.example.com", 5432, false}, {L, "db.example.co", 5432, false}, {L, "", 5432, false},
		}},
		{"L:*.example.com:443", []probe{
			{L, "a.example.com", 443, true}, {L, "A.B.Example.Com", 443, true},
			{L, "example.com", 443, false}, {L, "badexample.com", 443, false}, {L, ".example.com", 443, false},
			{L, "a.example.com.evil", 443, false},
		}},
		{"R:localhost:0", []probe{{R, "localhost", 0, true}, {R, "LOCALHOST.", 0, true}, {R, "", 0, true}, {R, "127.0.0.1", 0, false}, {R, "localhost", 1, false}}},
		{"R:0.0.0.0:8080", []probe{{R, "0.0.0.0", 8080, true}, {R, "", 8080, false}, {R, "::", 8080, false}}},
		{"D:*:1-65535", []probe{{D, "x", 0, false}, {D, "x", 1, true}, {D, "x", 65535, true}}},
		{" L:*:80 , 443 ", []probe{{L, "x", 80, true}, {L, "x", 443, true}, {L, "x", 81, false}}},
		{"L:[192.0.2.1]:1", []probe{{L, "192.0.2.1", 1, true}}},
		{"L:my_host-1.lan:1", []probe{{L, "my_host-1.lan", 1, true}}},
		{"L:*.1a:1", []probe{{L, "x.1a", 1, true}}},
	} {
		r, err := auth.ParseRule(tc.rule)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.rule, err)
			continue
		}
		if r.Text != tc.rule || r.String() != tc.rule {
			t.Errorf("ParseRule(%q).Text = %q", tc.rule, r.Text)
		}
		for _, p := range tc.probes {
			if got := r.Match(p.k, p.host, p.port); got != p.want {
				t.Errorf("%q.Match(%v, %q, %d) = %v, want %v", tc.rule, p.k, p.host, p.port, got, p.want)
			}
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{"", "missing \":\""},
		{"L", "missing \":\""},
		{":*:*", "kind is empty"},
		{"X:*:*", "unknown kind 'X'"},
		{"LX:*:*", "unknown kind 'X'"},
		{"L:*", "missing \":PORTS\""},
		{"L::80", "host is empty"},
		{"L:*:", "ports are empty"},
		{"L:::1:22", "must be in brackets"},
		{"L:fd00::/8:22", "must be in brackets"},
		{"L:[::1:22", "missing \"]\""},
		{"L:[::1]22", "missing \":PORTS\""},
		{"L:[::1]", "missing \":PORTS\""},
		{"L:[nothost]:22", "not an IP address"},
		{"L:[fd00::/200]:22", "not a CIDR"},
		{"L:[fe80::1%eth0]:22", "not an IP address"},
		{"L:10.0.0.0/33:22", "not a CIDR"},
		{"L:10.0.0.256:22", "not a valid IP address or host name"},
		{"L:10.0.0:22", "not a valid IP address or host name"},
		{"L:foo*.com:22", "wildcard"},
		{"L:*.:22", "wildcard"},
		{"L:*:22", ""}, // valid, checked below to keep the table honest
		{"L:a..b:22", "empty or overlong label"},
		{"L:bad host:22", "character ' '"},
		{"L:" + strings.Repeat("a", 64) + ".com:22", "overlong"},
		{"L:*:65536", "not a port number"},
		{"L:*:-1", "not a port number"},
		{"L:*:80,,90", "not a port number"},
		{"L:*:080", "not a port number"},
		{"L:*:+80", "not a port number"},
		{"L:*:90-80", "runs backwards"},
		{"L:*:1-2-3", "not a port number"},
		{"L:*:80,*", "must stand alone"},
		{"L:*:http", "not a port number"},
	} {
		_, err := auth.ParseRule(tc.rule)
		if tc.want == "" {
			if err != nil {
				t.Errorf("ParseRule(%q): %v", tc.rule, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseRule(%q) succeeded, want error containing %q", tc.rule, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("ParseRule(%q) error %q, want it to contain %q", tc.rule, msg, tc.want)
		}
		if !strings.Contains(msg, `e.g. "L:*.example.com:443"`) || !strings.Contains(msg, `"`+tc.rule+`"`) {
			t.Errorf("ParseRule(%q) error %q lacks the rule or an example", tc.rule, msg)
		}
	}
}

func TestZeroRuleMatchesNothing(t *testing.T) {
	var r auth.Rule
	for _, k := range []auth.Kind{L, R, D} {
		if r.Match(k, "", 0) || r.Match(k, "x", 1) || r.Has(k) {
			t.Errorf("zero Rule matches kind %v", k)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[auth.Kind]string{L: "L", R: "R", D: "D", 7: "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
	r, _ := auth.ParseRule("LD:*:*")
	if !r.Has(L) || r.Has(R) || !r.Has(D) || r.Has(200) {
		t.Error("Has is wrong for LD")
	}
}

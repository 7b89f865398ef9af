package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/auth"
)

func rules(t *testing.T, ss ...string) []auth.Rule {
	t.Helper()
	var out []auth.Rule
	for _, s := range ss {
		r, err := auth.ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestPolicyDefaults(t *testing.T) {
	for _, p := range []*auth.Policy{nil, {}} {
		for _, tc := range []probe{
			{L, "example.com", 22, true}, {L, "10.0.0.1", 0, true}, {D, "::1", 1, true},
			{R, "", 9000, true}, {R, "127.0.0.1", 9000, true}, {R, "127.9.9.9", 0, true},
			{R, "::1", 9000, true}, {R, "[::1]", 9000, true}, {R, "localhost", 9000, true}, {R, "LocalHost.", 9000, true},
			{R, "::ffff:127.0.0.1", 1, true},
			{R, "0.0.0.0", 9000, false}, {R, "::", 9000, false}, {R, "192.0.2.1", 9000, false},
			{R, "example.com", 9000, false}, {R, "localhost.example.com", 9000, false},
		} {
			for _, u := range []*auth.User{nil, {Name: "alice"}} {
				err := p.Check(u, tc.k, tc.host, tc.port)
				if (err == nil) != tc.want {
					t.Errorf("policy %v user %v: Check(%v, %q, %d) = %v, want allowed=%v", p, u, tc.k, tc.host, tc.port, err, tc.want)
				}
			}
		}
	}
}

func TestPolicyDefaultRefusal(t *testing.T) {
	err := (&auth.Policy{}).Check(nil, R, "0.0.0.0", 9000)
	var de *auth.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("err %v (%T), want *DeniedError", err, err)
	}
	if de.User != "" || len(de.Rules) != 0 || de.Kind != R || de.Host != "0.0.0.0" || de.Port != 9000 {
		t.Errorf("DeniedError = %+v", de)
	}
	want := "-R listener on 0.0.0.0:9000 refused by the global --allow rules: with no R rules only loopback binds " +
		"(127.0.0.0/8, ::1, localhost) are allowed; bind to 127.0.0.1 instead, or ask the server's administrator to add a rule such as R:0.0.0.0:9000"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
}

func TestPolicyIntersection(t *testing.T) {
	p := &auth.Policy{Global: rules(t, "L:10.0.0.0/8:*", "L:*.example.com:443", "R:*:9000-9999")}
	alice := &auth.User{Name: "alice", Rules: rules(t, "LD:10.1.0.0/16:22", "R:127.0.0.1:9000-9100")}
	bob := &auth.User{Name: "bob"} // no rules of his own: the defaults, then the global rules

	for _, tc := range []struct {
		u      *auth.User
		k      auth.Kind
		host   string
		port   int
		refuse string // "" allowed; else the refusing user ("-" for global)
	}{
		{alice, L, "10.1.2.3", 22, ""},
		{alice, L, "10.2.0.1", 22, "alice"}, // global allows, alice's rules do not
		{alice, L, "192.0.2.1", 22, "-"},    // alice's rules would not either; global refuses first
		{alice, L, "www.example.com", 443, "alice"},
		{alice, D, "10.1.2.3", 22, ""}, // global has no D rules: default allows
		{alice, D, "192.0.2.1", 22, "alice"},
		{alice, R, "127.0.0.1", 9050, ""},
		{alice, R, "", 9050, ""},
		{alice, R, "127.0.0.1", 9500, "alice"},
		{alice, R, "0.0.0.0", 9050, "alice"},
		{bob, L, "www.example.com", 443, ""},
		{bob, L, "www.example.com", 80, "-"},
		{bob, D, "anything", 1, ""},
		{bob, R, "127.0.0.1", 9500, ""},
		{bob, R, "0.0.0.0", 9500, "bob"}, // global allows *, bob's default (loopback only) refuses
		{bob, R, "127.0.0.1", 8000, "-"},
		{nil, R, "0.0.0.0", 9500, ""}, // no user: only the global rules
	} {
		err := p.Check(tc.u, tc.k, tc.host, tc.port)
		if tc.refuse == "" {
			if err != nil {
				t.Errorf("%v %v %q:%d: refused: %v", tc.u, tc.k, tc.host, tc.port, err)
			}
			continue
		}
		var de *auth.DeniedError
		if !errors.As(err, &de) {
			t.Errorf("%v %v %q:%d: err %v, want *DeniedError", tc.u, tc.k, tc.host, tc.port, err)
			continue
		}
		wantUser := tc.refuse
		if wantUser == "-" {
			wantUser = ""
		}
		if de.User != wantUser {
			t.Errorf("%v %v %q:%d: refused by %s, want user %q", tc.u, tc.k, tc.host, tc.port, de.RuleSet(), wantUser)
		}
	}

	err := p.Check(alice, L, "10.2.0.1", 22)
	want := `-L connection to 10.2.0.1:22 refused by user "alice"'s rules: no L rule matches (L rules: LD:10.1.0.0/16:22); ` +
		`use an allowed destination, or ask the server's administrator to add a rule such as L:10.2.0.1:22`
	if err == nil || err.Error() != want {
		t.Errorf("message\n%v\nwant\n%s", err, want)
	}
	err = p.Check(nil, L, "2001:db8::1", 80)
	for _, s := range []string{"-L connection to [2001:db8::1]:80", "the global --allow rules", "L:10.0.0.0/8:*, L:*.example.com:443", "L:[2001:db8::1]:80"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("message %v lacks %q", err, s)
		}
	}
	err = p.Check(alice, D, "192.0.2.1", 22)
	if err == nil || !strings.Contains(err.Error(), "-D connection to 192.0.2.1:22") || !strings.Contains(err.Error(), "D rules: LD:10.1.0.0/16:22") {
		t.Errorf("message %v", err)
	}
	err = p.Check(alice, R, "", 9500)
	if err == nil || !strings.Contains(err.Error(), "-R listener on port 9500") || !strings.Contains(err.Error(), "bind address") {
		t.Errorf("message %v", err)
	}
}

package auth_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/auth"
)

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"L:*:*", "LD:10.0.0.0/8:22,80,8000-8999", "R:127.0.0.1:9000-9100", "R:[::1]:*",
		"LRD:[fd00::/8]:443", "L:*.example.com:443", "L:Db.Example.COM.:5432", "L:::1:22",
		"L:[::ffff:10.0.0.0/104]:1", "X:*:*", "L:*:90-80", "L:[fe80::1%eth0]:22",
	} {
		f.Add(s, "10.1.2.3", 22, uint8(0))
	}
	f.Add("R:localhost:0", "", 0, uint8(1))
	f.Add("D:*.a.b:1-5", "X.A.B.", 3, uint8(2))
	f.Fuzz(func(t *testing.T, s, host string, port int, kind uint8) {
		r, err := auth.ParseRule(s)
		if err != nil {
			if !strings.Contains(err.Error(), "e.g.") {
				t.Fatalf("error %q lacks an example", err)
			}
			return
		}
		if r.Text != s {
			t.Fatalf("Text %q, want %q", r.Text, s)
		}
		again, err := auth.ParseRule(r.Text)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-parse of %q: %v, %+v vs %+v", s, err, again, r)
		}
		k := auth.Kind(kind % 4)
		got := r.Match(k, host, port)
		if got && !r.Has(k) {
			t.Fatalf("%q matches kind %v it does not have", s, k)
		}
		if got && (port < 0 || port > 65535) {
			t.Fatalf("%q matches port %d", s, port)
		}
		// Case and a final dot do not matter for host names.
		if !strings.ContainsAny(host, "[]:%") && got != r.Match(k, strings.ToUpper(host), port) && host != strings.ToUpper(host) {
			if isASCII(host) {
				t.Fatalf("%q: Match(%q) = %v but not for upper case", s, host, got)
			}
		}
		(&auth.Policy{Global: []auth.Rule{r}}).Check(&auth.User{Name: "u", Rules: []auth.Rule{r}}, k, host, port)
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func FuzzParseUsers(f *testing.F) {
	h := auth.HashToken("token-number-one")
	f.Add([]byte("[[user]]\nname = \"alice\"\ntoken_hash = \"" + h + "\"\nallow = [\"R:127.0.0.1:9000-9100\", \"L:*:443\"]\nmax_forwards = 10\nmax_conns = 100\n"))
	f.Add([]byte("[[user]]\nname = \"a\"\ntoken_hash = \"" + h + "\"\n[[user]]\nname = \"b\"\ntoken_hash = \"" + h + "\"\n"))
	f.Add([]byte("[[user]]\nname = \"a\"\ntoken = \"x\"\n"))
	f.Add([]byte("users = 1"))
	f.Add([]byte("[[user]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		us, err := auth.ParseUsers(data, "users.toml")
		if err != nil {
			if !strings.Contains(err.Error(), "users.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		list := us.List()
		if len(list) == 0 {
			t.Fatal("no users and no error")
		}
		names := map[string]bool{}
		for _, u := range list {
			if u.Name == "" || names[strings.ToLower(u.Name)] || u.MaxConns < 0 || u.MaxForwards < 0 {
				t.Fatalf("bad user %+v", u)
			}
			names[strings.ToLower(u.Name)] = true
		}
		us.Lookup(string(data))
	})
}

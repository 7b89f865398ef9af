package auth_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/auth"
)

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != 32 || len(tok) != 43 {
			t.Fatalf("token %q: %d bytes, %v", tok, len(raw), err)
		}
		if seen[tok] {
			t.Fatal("repeated token")
		}
		seen[tok] = true
	}
}

func TestHashToken(t *testing.T) {
	sum := sha256.Sum256([]byte("hello"))
	if got, want := auth.HashToken("hello"), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("HashToken = %q, want %q", got, want)
	}
}

func TestSingleToken(t *testing.T) {
	tok, _ := auth.NewToken()
	us, err := auth.SingleToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := us.Lookup(tok)
	if !ok || u.Name != "default" || len(u.Rules) != 0 || u.MaxConns != 0 || u.MaxForwards != 0 {
		t.Errorf("Lookup = %+v, %v", u, ok)
	}
	for _, bad := range []string{"", tok[:42], tok + "x", strings.ToUpper(tok)} {
		if u, ok := us.Lookup(bad); ok || u != nil {
			t.Errorf("Lookup(%q) = %v, %v", bad, u, ok)
		}
	}
	if _, err := auth.SingleToken(strings.Repeat("x", 16)); err != nil {
		t.Errorf("16-character token refused: %v", err)
	}
	for tok, want := range map[string]string{
		"":                "empty",
		"short":           "only 5 characters; use at least 16",
		"ééééééééééééééé": "only 15 characters",
		tok + "\n":        "white space",
		" " + tok:         "white space",
	} {
		_, err := auth.SingleToken(tok)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "braid token") {
			t.Errorf("SingleToken(%q) = %v, want error containing %q and a hint", tok, err, want)
		}
	}
	var nilUsers *auth.Users
	if _, ok := nilUsers.Lookup(tok); ok {
		t.Error("nil Users found a user")
	}
}

func TestLoadUsersFile(t *testing.T) {
	aliceTok, _ := auth.NewToken()
	bobTok, _ := auth.NewToken()
	data := `
# users
[[user]]
name = "alice"
token_hash = "` + auth.HashToken(aliceTok) + `"
allow = ["R:127.0.0.1:9000-9100", "L:*:443"]
max_forwards = 10
max_conns = 100

[[user]]
name = "bob"
token_hash = "` + strings.ToUpper(auth.HashToken(bobTok)) + `"
`
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	us, err := auth.LoadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := us.Lookup(aliceTok)
	if !ok || a.Name != "alice" || a.MaxForwards != 10 || a.MaxConns != 100 || len(a.Rules) != 2 ||
		a.Rules[0].Text != "R:127.0.0.1:9000-9100" || a.Rules[1].Text != "L:*:443" {
		t.Errorf("alice = %+v", a)
	}
	b, ok := us.Lookup(bobTok)
	if !ok || b.Name != "bob" || b.Rules != nil {
		t.Errorf("bob = %+v, %v", b, ok)
	}
	if _, ok := us.Lookup(auth.HashToken(aliceTok)); ok {
		t.Error("the hash works as a token")
	}
	if l := us.List(); len(l) != 2 || l[0] != a || l[1] != b {
		t.Errorf("List = %v", l)
	}
	if _, err := auth.LoadUsersFile(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseUsersErrors(t *testing.T) {
	h1 := auth.HashToken("token-number-one")
	h2 := auth.HashToken("token-number-two")
	user := func(name, hash, extra string) string {
		return "[[user]]\nname = \"" + name + "\"\ntoken_hash = \"" + hash + "\"\n" + extra + "\n"
	}
	for _, tc := range []struct {
		name, data string
		want       []string
	}{
		{"empty", "", []string{"defines no users"}},
		{"syntax", "[[user]\nname = 1", []string{"auth file users.toml", "line "}},
		{"type", "[[user]]\nname = 5\n", []string{"auth file users.toml", "name"}},
		{"unknown user key", user("a", h1, "alow = []"), []string{`unknown key "user.alow"`, "name, token_hash, allow, max_forwards, max_conns"}},
		{"raw token", user("a", h1, `token = "x"`), []string{`unknown key "user.token"`, "braid token --hash", "never the token"}},
		{"unknown top key", "users = 1\n" + user("a", h1, ""), []string{`unknown key "users"`, "[[user]]"}},
		{"unknown table", "[server]\nx = 1\n" + user("a", h1, ""), []string{`unknown key "server`}},
		{"no name", "[[user]]\ntoken_hash = \"" + h1 + "\"\n", []string{"[[user]] #1", "name is missing"}},
		{"bad name", user(" a", h1, ""), []string{"white space"}},
		{"dup name", user("alice", h1, "") + user("Alice", h2, ""), []string{`user "Alice"`, `already used by user "alice"`}},
		{"dup hash", user("a", h1, "") + user("b", h1, ""), []string{`user "b"`, `same as user "a"'s`}},
		{"no hash", "[[user]]\nname = \"a\"\n", []string{`user "a"`, "token_hash is missing", "braid token --hash"}},
		{"bad hash", user("a", "not-a-hash", ""), []string{`user "a"`, "token_hash is not", "use `braid token --hash`"}},
		{"short hash", user("a", h1[:70], ""), []string{"use `braid token --hash`"}},
		{"md5", user("a", "md5:"+h1[7:], ""), []string{"use `braid token --hash`"}},
		{"non-hex", user("a", "sha256:"+strings.Repeat("g", 64), ""), []string{"use `braid token --hash`"}},
		{"bad rule", user("a", h1, `allow = ["L:*:x"]`), []string{`user "a"`, `allow rule "L:*:x"`, "e.g."}},
		{"allow not list", user("a", h1, `allow = "L:*:*"`), []string{"allow"}},
		{"negative", user("a", h1, "max_conns = -1"), []string{`user "a"`, "max_conns"}},
	} {
		_, err := auth.ParseUsers([]byte(tc.data), "users.toml")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if !strings.Contains(err.Error(), "users.toml") {
			t.Errorf("%s: error %q does not name the file", tc.name, err)
		}
	}
	// A raw token pasted as token_hash is not echoed back.
	_, err := auth.ParseUsers([]byte(user("a", "my-secret-token-value", "")), "f")
	if err == nil || strings.Contains(err.Error(), "my-secret") {
		t.Errorf("error %v", err)
	}
}

package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// MinTokenLen is the shortest token SingleToken accepts.
const MinTokenLen = 16

// NewToken returns a new random token: 32 bytes from crypto/rand in
// unpadded base64url (43 characters).
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

const hashPrefix = "sha256:"

// HashToken returns the form of token stored in auth files:
// "sha256:" and the lower-case hex SHA-256 of the token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// User is an authenticated principal. MaxForwards and MaxConns are 0 for
// the server's default. A *User returned by [Users.Lookup] is shared and
// must not be modified.
type User struct {
	Name        string
	Rules       []Rule
	MaxForwards int
	MaxConns    int
}

// Users maps tokens to users. It is immutable once built and safe for
// concurrent use.
type Users struct {
	byHash map[[sha256.Size]byte]*User
	list   []*User
}

// Lookup returns the user whose token is token. It hashes the token and
// looks the hash up, so its cost does not depend on how much of a stored
// token a guess shares; raw tokens are never stored or compared.
func (u *Users) Lookup(token string) (*User, bool) {
	if u == nil {
		return nil, false
	}
	user, ok := u.byHash[sha256.Sum256([]byte(token))]
	return user, ok
}

// List returns the users in the order they were defined. The slice is a
// copy; the users are shared and must not be modified.
func (u *Users) List() []*User {
	if u == nil {
		return nil
	}
	return append([]*User(nil), u.list...)
}

// SingleToken returns Users with one user, "default", for a shared token
// (--token-file or BRAID_TOKEN). It refuses an empty token, one shorter
// than MinTokenLen characters, and one with surrounding white space.
func SingleToken(token string) (*Users, error) {
	switch n := utf8.RuneCountInString(token); {
	case n == 0:
		return nil, errors.New("the token is empty; put one in --token-file or BRAID_TOKEN (`braid token` makes one)")
	case strings.TrimSpace(token) != token:
		return nil, errors.New("the token starts or ends with white space; remove it (`braid token` makes a token without any)")
	case n < MinTokenLen:
		return nil, fmt.Errorf("the token is only %d characters; use at least %d (`braid token` makes a strong one)", n, MinTokenLen)
	}
	u := &User{Name: "default"}
	return &Users{
		byHash: map[[sha256.Size]byte]*User{sha256.Sum256([]byte(token)): u},
		list:   []*User{u},
	}, nil
}

// LoadUsersFile reads a TOML auth file (see the package documentation) and
// returns its users. Errors name the file, and the user where there is one.
func LoadUsersFile(path string) (*Users, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading auth file: %w", err)
	}
	return ParseUsers(data, path)
}

type fileUser struct {
	Name        string   `toml:"name"`
	TokenHash   string   `toml:"token_hash"`
	Allow       []string `toml:"allow"`
	MaxForwards int      `toml:"max_forwards"`
	MaxConns    int      `toml:"max_conns"`
}

const userKeys = "name, token_hash, allow, max_forwards, max_conns"

// ParseUsers parses the contents of a TOML auth file; name (the file name)
// is used only in error messages.
func ParseUsers(data []byte, name string) (*Users, error) {
	var f struct {
		User []fileUser `toml:"user"`
	}
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %v", name, err)
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		key := keys[0].String()
		switch {
		case len(keys[0]) == 1:
			return nil, fmt.Errorf("auth file %s: unknown key %q; the file holds only [[user]] tables", name, key)
		case key == "user.token":
			return nil, fmt.Errorf("auth file %s: unknown key %q; store the token's hash as token_hash (from `braid token --hash`), never the token", name, key)
		default:
			return nil, fmt.Errorf("auth file %s: unknown key %q; a [[user]] table takes %s", name, key, userKeys)
		}
	}
	if len(f.User) == 0 {
		return nil, fmt.Errorf("auth file %s defines no users; add a [[user]] table with name and token_hash", name)
	}
	us := &Users{byHash: make(map[[sha256.Size]byte]*User, len(f.User))}
	names := make(map[string]string, len(f.User))
	for i, fu := range f.User {
		where := fmt.Sprintf("auth file %s, user %q", name, fu.Name)
		if err := checkName(fu.Name); err != nil {
			return nil, fmt.Errorf("auth file %s, [[user]] #%d: %v", name, i+1, err)
		}
		if prev, dup := names[strings.ToLower(fu.Name)]; dup {
			return nil, fmt.Errorf("%s: the name is already used by user %q; give each user a different name", where, prev)
		}
		names[strings.ToLower(fu.Name)] = fu.Name
		sum, err := parseHash(fu.TokenHash)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		if other, dup := us.byHash[sum]; dup {
			return nil, fmt.Errorf("%s: the token_hash is the same as user %q's; give each user their own token", where, other.Name)
		}
		if fu.MaxForwards < 0 || fu.MaxConns < 0 {
			return nil, fmt.Errorf("%s: max_forwards and max_conns must be 0 (the server default) or more", where)
		}
		u := &User{Name: fu.Name, MaxForwards: fu.MaxForwards, MaxConns: fu.MaxConns}
		for _, s := range fu.Allow {
			r, err := ParseRule(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			u.Rules = append(u.Rules, r)
		}
		us.byHash[sum] = u
		us.list = append(us.list, u)
	}
	return us, nil
}

func checkName(name string) error {
	if name == "" {
		return errors.New("name is missing or empty; give every user a name")
	}
	if strings.TrimSpace(name) != name || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("name %q has surrounding white space or control characters", name)
	}
	return nil
}

func parseHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if s == "" {
		return sum, errors.New("token_hash is missing; use `braid token --hash` to compute it from the user's token")
	}
	hexPart, ok := strings.CutPrefix(strings.ToLower(s), hashPrefix)
	if ok && len(hexPart) == 2*sha256.Size {
		if _, err := hex.Decode(sum[:], []byte(hexPart)); err == nil {
			return sum, nil
		}
	}
	// The value is not shown: it may be a token pasted in by mistake.
	return sum, errors.New("token_hash is not \"sha256:\" followed by 64 hex digits; use `braid token --hash` to compute it from the user's token")
}

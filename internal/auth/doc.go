// Package auth decides who may use a braid server and which forwards they
// may open: tokens, users (from a shared token or an auth file) and allow
// rules.
//
// # Tokens
//
// A token is a secret string the client sends to authenticate. `braid
// token` prints a new one ([NewToken]: 32 random bytes, base64url without
// padding). A server started with --token-file FILE or BRAID_TOKEN accepts
// that one token (at least 16 characters) as the user "default". The server
// keeps only SHA-256 hashes of tokens and compares hashes, never tokens.
//
// # Auth file
//
// With --auth-file FILE the server has named users, each with a token, its
// own allow rules and limits. The file is TOML with one [[user]] table per
// user:
//
//	[[user]]
//	name = "alice"
//	token_hash = "sha256:5a0688db4d693f623580bb429d10f52d6692d2d9cb739784091b383077457c97"
//	allow = ["R:127.0.0.1:9000-9100", "L:*:443"]  # optional
//	max_forwards = 10                             # optional, 0 = server default (--max-forwards)
//	max_conns = 100                               # optional, 0 = server default (--max-conns)
//
//	[[user]]
//	name = "bob"
//	token_hash = "sha256:..."
//
// token_hash is "sha256:" and the hex SHA-256 of the user's token; compute
// it with `braid token --hash` (reads the token on stdin) so the file holds
// no secret. name and token_hash are required, and both must differ between
// users. Any other key is an error, as is a file without users.
//
// # Allow rules
//
// Rules limit what forwards may do. They come from --allow RULE (global,
// repeatable) and from a user's allow list. A rule is
//
//	KIND:HOST:PORTS
//
// KIND is L, R or D, or several of them, as in LD. For L and D, HOST and
// PORTS are the destination the server dials; for R, they are the address
// the server listens on.
//
// HOST is one of:
//
//	192.0.2.7         an IP address; IPv6 in brackets: [2001:db8::7]
//	10.0.0.0/8        a CIDR block; IPv6 in brackets: [fd00::/8]
//	db.example.com    a host name (case does not matter)
//	*.example.com     any name below example.com (not example.com itself)
//	*                 any host
//
// PORTS is * (any port), a port N, a range N-M, or a comma-separated list
// of those, as in 22,80,8000-8999. For R, port 0 (let the server pick) is
// allowed only by * or a list that includes 0.
//
// Examples:
//
//	--allow 'L:*.internal.example.com:443'   # -L only to HTTPS on internal names
//	--allow 'LD:10.0.0.0/8:*'                # -L and -D into 10/8
//	--allow 'R:0.0.0.0:8080'                 # -R may listen on all interfaces, port 8080
//	--allow 'R:127.0.0.1:9000-9100'          # -R only on loopback ports 9000-9100
//
// IP and CIDR rules match only forwards that give an IP address, and name
// rules only forwards that give a name: the server checks the host as the
// client wrote it, before resolving it, so a name rule allows whatever
// address that name resolves to on the server. An empty -R bind address
// means loopback.
//
// For each kind, a rule set that has no rule of that kind applies the
// default: L and D may go anywhere, and R may only listen on loopback
// (127.0.0.0/8, ::1 or localhost). A rule set that has rules of that kind
// allows a forward only if one of them matches. A forward must pass both
// the global rules and the user's rules; a refusal names the rule set that
// refused, lists its rules of that kind and says what to do.
//
// # Concurrency
//
// [Rule], [Users] and [Policy] are not modified after they are built and
// may be used from any number of goroutines.
package auth

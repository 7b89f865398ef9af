// Package trust gives the braid tunnel its TLS identities and decides
// whether a client trusts the server it reached.
//
// # Server identity
//
// Unless it is given a certificate (--tls-cert/--tls-key), a braid server
// uses a key and a self-signed certificate that [LoadOrCreateIdentity]
// creates once in its state directory ([DefaultStateDir]:
// $XDG_STATE_HOME/braid, else $HOME/.local/state/braid) as server.key
// (ECDSA P-256, PKCS#8 PEM, mode 0600) and server.crt, and reuses on every
// start, so clients keep trusting it across restarts. Delete both files to
// give the server a new identity; clients will then refuse it until their
// known_hosts entry is removed.
//
// # Fingerprints
//
// A server is identified by the fingerprint of its public key, not of its
// certificate: "SHA256:" followed by the unpadded standard base64 of the
// SHA-256 of the certificate's SubjectPublicKeyInfo, for example
//
//	SHA256:+wrqR67NLCnfr4J5ycHadE+TdhvdDmI7zBBW9Y4BqCs
//
// A certificate re-issued for the same key keeps its fingerprint. The server
// logs its fingerprint when it starts ("server listening ...
// fingerprint=SHA256:...").
//
// # Checking the server
//
// The client checks the server's key in one of two ways:
//
//   - Pinned: with --fingerprint SHA256:..., the server must present exactly
//     that key; known_hosts is neither read nor written.
//   - Trust on first use: otherwise the client looks the server up in its
//     known_hosts file ([DefaultKnownHosts]: $XDG_CONFIG_HOME/braid/known_hosts,
//     else $HOME/.config/braid/known_hosts). An unknown server is recorded
//     there the first time and accepted; a known server must present a key
//     recorded for it, or the connection is refused with "server key
//     changed", which names the file and line to remove if the key was
//     replaced on purpose.
//
// # known_hosts format
//
// One entry per line: the server address exactly as given to --server
// (HOST:PORT, recorded in lower case; addresses are compared without regard
// to case), white space, and the fingerprint:
//
//	# comments and blank lines are ignored
//	tunnel.example.com:7000 SHA256:+wrqR67NLCnfr4J5ycHadE+TdhvdDmI7zBBW9Y4BqCs
//	[2001:db8::1]:7000 SHA256:od6ynMSt6mxAr2PdeYkGdFZ4XK1BD+oRlblEkdCeptk
//
// A server may have several lines; any of their keys is accepted. A
// malformed line is an error naming the file and the line. New entries are
// appended with a single write, so several clients may share the file.
//
// # Mutual TLS
//
// With --tls-client-ca FILE the server requires every client to present a
// certificate signed by a CA in FILE (PEM); the client gives its own with
// --tls-cert/--tls-key. This is in addition to token authentication.
//
// All connections use TLS 1.3 and the ALPN protocol "braid/1".
//
// # Concurrency
//
// All functions may be called concurrently. The *tls.Config values returned
// by [ServerConfig] and [ClientConfig] may serve any number of concurrent
// handshakes; the known_hosts check runs during each client handshake and
// also calls ClientOptions.OnFirstUse from there.
package trust

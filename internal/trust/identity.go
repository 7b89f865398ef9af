package trust

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the state directory used by [LoadOrCreateIdentity].
const (
	KeyFile  = "server.key"
	CertFile = "server.crt"
)

// DefaultStateDir returns the directory where a braid server keeps its
// identity: $XDG_STATE_HOME/braid, else $HOME/.local/state/braid.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "braid"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the state directory: %w; set --state-dir or XDG_STATE_HOME", err)
	}
	return filepath.Join(home, ".local", "state", "braid"), nil
}

// DefaultKnownHosts returns the client's known_hosts file:
// $XDG_CONFIG_HOME/braid/known_hosts, else $HOME/.config/braid/known_hosts.
func DefaultKnownHosts() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "braid", "known_hosts"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the known_hosts file: %w; set --known-hosts or XDG_CONFIG_HOME", err)
	}
	return filepath.Join(home, ".config", "braid", "known_hosts"), nil
}

// LoadIdentity loads a certificate chain and key from PEM files (as given
// by --tls-cert and --tls-key), with an error that names the files.
// The returned certificate has Leaf set.
func LoadIdentity(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return c, nil
}

// LoadOrCreateIdentity returns the server identity kept in dir: the key in
// dir/server.key and the self-signed certificate in dir/server.crt. If
// neither exists, it creates them (an ECDSA P-256 key, a certificate valid
// until 9999), creating dir with mode 0700 if needed; the key file has mode
// 0600. If only the key exists (a crash between the two writes), a new
// certificate is made for it, which keeps the fingerprint. A certificate
// without its key is an error.
//
// Each file is written to a temporary file first and then linked into place
// only if no file of that name exists yet, so a reader never sees a partial
// file and two servers starting at once with the same dir end up with the
// same identity. The returned certificate has Leaf set.
func LoadOrCreateIdentity(dir string) (tls.Certificate, error) {
	keyPath := filepath.Join(dir, KeyFile)
	certPath := filepath.Join(dir, CertFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("creating state directory: %w; check permissions or pass --state-dir", err)
	}

	keyPEM, err := os.ReadFile(keyPath)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if _, cerr := os.Stat(certPath); cerr == nil {
			return tls.Certificate{}, fmt.Errorf("%s exists but its key %s does not; restore the key, or delete %s to create a new server identity (clients will then see a changed key)", certPath, keyPath, certPath)
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("generating server key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("encoding server key: %w", err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		won, err := writeNew(keyPath, keyPEM, 0o600)
		if err != nil {
			return tls.Certificate{}, err
		}
		if !won { // another process created it first: use theirs
			if keyPEM, err = os.ReadFile(keyPath); err != nil {
				return tls.Certificate{}, fmt.Errorf("reading server key: %w", err)
			}
		}
	default:
		return tls.Certificate{}, fmt.Errorf("reading server key: %w", err)
	}

	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		certPEM, err = selfSign(keyPEM, keyPath)
		if err != nil {
			return tls.Certificate{}, err
		}
		won, err := writeNew(certPath, certPEM, 0o644)
		if err != nil {
			return tls.Certificate{}, err
		}
		if !won {
			certPEM, err = os.ReadFile(certPath)
		}
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading server certificate: %w", err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server identity in %s is unusable: %w; delete %s and %s to create a new one (clients will then see a changed key)", dir, err, keyPath, certPath)
	}
	return c, nil
}

// selfSign makes a self-signed server certificate for the key in keyPEM.
func selfSign(keyPEM []byte, keyPath string) ([]byte, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%s holds no PEM key; delete it to create a new server identity", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w; delete it to create a new server identity", keyPath, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is a %T key, not ECDSA; delete it to create a new server identity", keyPath, k)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "braid server"},
		NotBefore:    time.Now().Add(-time.Hour).UTC(),
		// RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration".
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"braid"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating server certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeNew writes data to path only if path does not exist yet, never
// exposing a partial file: it writes and syncs a temporary file in the same
// directory, then links it to path (falling back to rename where hard links
// are not supported). It reports false if path already existed.
func writeNew(path string, data []byte, mode os.FileMode) (won bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	err = os.Link(tmp, path)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return false, nil
	default:
		// No hard links here (some network or FUSE file systems): rename,
		// accepting a last-writer-wins race between simultaneous creators.
		if _, serr := os.Lstat(path); serr == nil {
			return false, nil
		}
		if err := os.Rename(tmp, path); err != nil {
			return false, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if d, err := os.Open(dir); err == nil { // persist the new directory entry
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}

// Fingerprint returns the fingerprint of the certificate's public key:
// "SHA256:" and the unpadded standard base64 of the SHA-256 of its
// SubjectPublicKeyInfo. Certificates for the same key share a fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return fingerprintPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

// CertFingerprint returns the [Fingerprint] of c's leaf certificate.
func CertFingerprint(c tls.Certificate) (string, error) {
	leaf := c.Leaf
	if leaf == nil {
		if len(c.Certificate) == 0 {
			return "", errors.New("trust: TLS certificate is empty")
		}
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return "", fmt.Errorf("trust: parsing TLS certificate: %w", err)
		}
	}
	return Fingerprint(leaf), nil
}

const fingerprintPrefix = "SHA256:"

// ParseFingerprint checks that s is a fingerprint as printed by
// [Fingerprint] (the "SHA256:" prefix may be in any case) and returns it in
// canonical form.
func ParseFingerprint(s string) (string, error) {
	if len(s) < len(fingerprintPrefix) || !strings.EqualFold(s[:len(fingerprintPrefix)], fingerprintPrefix) {
		return "", fmt.Errorf("fingerprint %q does not start with \"SHA256:\"; copy it from the server's \"server listening\" log line", s)
	}
	b64 := s[len(fingerprintPrefix):]
	raw, err := base64.RawStdEncoding.Strict().DecodeString(b64)
	if err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q is not SHA256: followed by 43 base64 characters; copy it from the server's \"server listening\" log line", s)
	}
	return fingerprintPrefix + b64, nil
}

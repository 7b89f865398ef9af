package trust

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// KnownHost is one entry of a known_hosts file.
type KnownHost struct {
	Addr        string // HOST:PORT as written
	Fingerprint string // canonical, as returned by [ParseFingerprint]
	Line        int    // 1-based line number in the file
}

// ParseKnownHosts parses the contents of a known_hosts file (see the
// package documentation for the format). file is used only in error
// messages. A malformed line is an error naming file and line.
func ParseKnownHosts(data []byte, file string) ([]KnownHost, error) {
	var hosts []KnownHost
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("known_hosts %s line %d: want \"HOST:PORT SHA256:...\", got %d fields; fix or delete the line", file, n, len(fields))
		}
		if err := checkAddr(fields[0]); err != nil {
			return nil, fmt.Errorf("known_hosts %s line %d: %v; fix or delete the line", file, n, err)
		}
		fp, err := ParseFingerprint(fields[1])
		if err != nil {
			return nil, fmt.Errorf("known_hosts %s line %d: %v; fix or delete the line", file, n, err)
		}
		hosts = append(hosts, KnownHost{Addr: fields[0], Fingerprint: fp, Line: n})
	}
	return hosts, nil
}

// checkAddr checks that addr is a HOST:PORT usable as a known_hosts key.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not HOST:PORT", addr)
	}
	if host == "" || port == "" || strings.ContainsAny(addr, " \t\r\n#") {
		return fmt.Errorf("address %q is not HOST:PORT", addr)
	}
	return nil
}

// readKnownHosts reads and parses path; a missing file has no entries.
func readKnownHosts(path string) ([]KnownHost, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts: %w", err)
	}
	return ParseKnownHosts(data, path)
}

// appendKnownHost records addr's fingerprint at the end of path, creating
// the file (0600) and its directory (0700) if needed. The entry goes out in
// one O_APPEND write, so concurrent writers do not interleave lines.
func appendKnownHost(path, addr, fp string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("recording server key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recording server key: %w", err)
	}
	line := addr + " " + fp + "\n"
	// Start a new line if the file does not end with one (edited by hand).
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		var last [1]byte
		if r, err := os.Open(path); err == nil {
			if _, err := r.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
				line = "\n" + line
			}
			r.Close()
		}
	}
	if _, err := f.Write([]byte(line)); err != nil {
		f.Close()
		return fmt.Errorf("recording server key in %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("recording server key in %s: %w", path, err)
	}
	return nil
}

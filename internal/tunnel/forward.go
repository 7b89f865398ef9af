package tunnel

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Kind is the kind of a forward, as ssh names them.
type Kind int

// Forward kinds.
const (
	Local   Kind = iota // -L: the client listens, the server dials the target
	Remote              // -R: the server listens, the client dials the target
	Dynamic             // -D: a SOCKS5 proxy on the client, the server dials
)

// String returns "local", "remote" or "dynamic".
func (k Kind) String() string {
	switch k {
	case Local:
		return "local"
	case Remote:
		return "remote"
	case Dynamic:
		return "dynamic"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Flag returns the command-line flag of the kind: "-L", "-R" or "-D".
func (k Kind) Flag() string {
	switch k {
	case Local:
		return "-L"
	case Remote:
		return "-R"
	case Dynamic:
		return "-D"
	}
	return "-?"
}

// Forward is one -L, -R or -D forward as parsed from ssh's syntax.
// A Forward is a value; it is safe to copy and share.
type Forward struct {
	Kind Kind
	// Spec is the text the user wrote, without the flag.
	Spec string
	// BindHost is where to listen ("" as written when absent: loopback
	// for -L and -D on the client; for -R the server's rules decide, and
	// "" means loopback there too). "*" means every interface.
	BindHost string
	BindPort int
	// TargetHost and TargetPort say where to connect (not used by -D).
	TargetHost string
	TargetPort int
}

// Name returns the forward as the user would write it, e.g.
// "-L 8080:db:5432".
func (f Forward) Name() string { return f.Kind.Flag() + " " + f.Spec }

// ListenAddr returns the HOST:PORT to listen on, mapping an empty bind
// host to the loopback address and "*" to every interface.
func (f Forward) ListenAddr() string {
	return net.JoinHostPort(listenHost(f.BindHost), strconv.Itoa(f.BindPort))
}

// Target returns TargetHost:TargetPort.
func (f Forward) Target() string {
	return net.JoinHostPort(f.TargetHost, strconv.Itoa(f.TargetPort))
}

func listenHost(h string) string {
	switch h {
	case "", "localhost":
		return "127.0.0.1"
	case "*":
		return ""
	}
	return h
}

// ParseForward parses spec in ssh's syntax for kind k:
//
//	-L and -R: [BIND:]PORT:HOST:HOSTPORT
//	-D:        [BIND:]PORT
//
// IPv6 addresses go in brackets ("[::1]:8080:[fd00::5]:80"). Port 0 as
// the listening port lets the listening side pick one.
func ParseForward(k Kind, spec string) (Forward, error) {
	f := Forward{Kind: k, Spec: spec}
	parts, err := splitSpec(spec)
	if err != nil {
		return f, fmt.Errorf("%s %s: %v", k.Flag(), spec, err)
	}
	usage := "[BIND:]PORT:HOST:HOSTPORT, e.g. 8080:localhost:80"
	if k == Dynamic {
		usage = "[BIND:]PORT, e.g. 1080"
	}
	bad := func(why string) (Forward, error) {
		return f, fmt.Errorf("%s %s: %s; expected %s", k.Flag(), spec, why, usage)
	}
	if k == Dynamic {
		switch len(parts) {
		case 1:
		case 2:
			f.BindHost = parts[0]
			parts = parts[1:]
		default:
			return bad("wrong number of fields")
		}
		p, err := parsePort(parts[0], true)
		if err != nil {
			return bad(err.Error())
		}
		f.BindPort = p
		return f, nil
	}
	switch len(parts) {
	case 3:
	case 4:
		f.BindHost = parts[0]
		parts = parts[1:]
	default:
		return bad("wrong number of fields")
	}
	if f.BindPort, err = parsePort(parts[0], true); err != nil {
		return bad("listening port: " + err.Error())
	}
	if parts[1] == "" {
		return bad("empty target host")
	}
	f.TargetHost = parts[1]
	if f.TargetPort, err = parsePort(parts[2], false); err != nil {
		return bad("target port: " + err.Error())
	}
	return f, nil
}

// splitSpec splits on colons outside brackets and strips the brackets.
func splitSpec(s string) ([]string, error) {
	var parts []string
	for len(s) > 0 || len(parts) == 0 {
		var p string
		if strings.HasPrefix(s, "[") {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				return nil, fmt.Errorf("missing ']'")
			}
			p, s = s[1:end], s[end+1:]
			if p == "" {
				return nil, fmt.Errorf("empty brackets")
			}
			if s != "" && s[0] != ':' {
				return nil, fmt.Errorf("expected ':' after ']'")
			}
		} else {
			i := strings.IndexByte(s, ':')
			if i < 0 {
				i = len(s)
			}
			p, s = s[:i], s[i:]
			if strings.ContainsAny(p, "[]") {
				return nil, fmt.Errorf("stray bracket in %q", p)
			}
		}
		parts = append(parts, p)
		if s == "" {
			break
		}
		s = s[1:] // the ':'
		if s == "" {
			return nil, fmt.Errorf("ends with ':'")
		}
	}
	return parts, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !zeroOK) {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return p, nil
}

package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Kind is the kind of a forward.
type Kind uint8

// The kinds of forward, named after the client flags.
const (
	KindLocal   Kind = iota // -L: the server dials a destination for the client
	KindRemote              // -R: the server listens on a bind address
	KindDynamic             // -D: SOCKS; the server dials destinations the client names
)

// String returns the kind's letter as used in rules: "L", "R" or "D".
func (k Kind) String() string {
	switch k {
	case KindLocal:
		return "L"
	case KindRemote:
		return "R"
	case KindDynamic:
		return "D"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Rule is one parsed allow rule. The zero Rule matches nothing. A Rule is
// immutable once parsed and may be used concurrently.
type Rule struct {
	// Text is the rule as written.
	Text string

	kinds   uint8        // bit 1<<Kind for each kind the rule covers
	anyHost bool         // HOST is "*"
	addr    netip.Addr   // HOST is an IP address (unmapped, no zone)
	prefix  netip.Prefix // HOST is a CIDR (masked)
	name    string       // HOST is a host name (lower case, no final dot)
	suffix  string       // HOST is "*.example.com": ".example.com"
	ports   []portRange  // nil: any port
}

type portRange struct{ lo, hi uint16 }

// String returns r.Text.
func (r Rule) String() string { return r.Text }

// Has reports whether r covers forwards of kind k.
func (r Rule) Has(k Kind) bool { return k < 8 && r.kinds&(1<<k) != 0 }

const ruleHelp = `a rule is KIND:HOST:PORTS, e.g. "L:*.example.com:443", "R:127.0.0.1:9000-9100" or "LD:[fd00::/8]:22,80"`

// ParseRule parses an allow rule, KIND:HOST:PORTS (see the package
// documentation). The error says what is wrong and shows valid rules.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(strings.TrimSpace(s))
	if err != nil {
		return Rule{}, fmt.Errorf("allow rule %q: %v; %s", s, err, ruleHelp)
	}
	r.Text = s
	return r, nil
}

func parseRule(s string) (Rule, error) {
	var r Rule
	kinds, rest, ok := strings.Cut(s, ":")
	if !ok {
		return r, errors.New("missing \":\" after the kind")
	}
	if kinds == "" {
		return r, errors.New("the kind is empty; use L, R, D or a combination such as LD")
	}
	for _, c := range kinds {
		switch c {
		case 'L', 'l':
			r.kinds |= 1 << KindLocal
		case 'R', 'r':
			r.kinds |= 1 << KindRemote
		case 'D', 'd':
			r.kinds |= 1 << KindDynamic
		default:
			return r, fmt.Errorf("unknown kind %q; use L, R, D or a combination such as LD", c)
		}
	}

	var host, ports string
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return r, errors.New("missing \"]\" after the bracketed host")
		}
		host = rest[1:end]
		after := rest[end+1:]
		if !strings.HasPrefix(after, ":") {
			return r, errors.New("missing \":PORTS\" after the bracketed host")
		}
		ports = after[1:]
		if err := r.parseBracketed(host); err != nil {
			return r, err
		}
	} else {
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return r, errors.New("missing \":PORTS\" after the host")
		}
		host, ports = rest[:i], rest[i+1:]
		if err := r.parseHost(host); err != nil {
			return r, err
		}
	}
	return r, r.parsePorts(ports)
}

func (r *Rule) parseBracketed(host string) error {
	if strings.Contains(host, "/") {
		p, err := netip.ParsePrefix(host)
		if err != nil || p.Addr().Zone() != "" {
			return fmt.Errorf("%q is not a CIDR such as [fd00::/8]", host)
		}
		r.setPrefix(p)
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%q is not an IP address such as [::1]", host)
	}
	r.addr = a.Unmap()
	return nil
}

func (r *Rule) setPrefix(p netip.Prefix) {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	r.prefix = p.Masked()
}

func (r *Rule) parseHost(host string) error {
	switch {
	case host == "":
		return errors.New("the host is empty; use * for any host")
	case host == "*":
		r.anyHost = true
		return nil
	case strings.Contains(host, ":"):
		return fmt.Errorf("IPv6 address %q must be in brackets, e.g. [::1] or [fd00::/8]", host)
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", host)
		}
		r.setPrefix(p)
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		r.addr = a.Unmap()
		return nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		if err := checkHostname(rest); err != nil {
			return fmt.Errorf("%q: %v", host, err)
		}
		r.suffix = "." + rest
		return nil
	}
	if err := checkHostname(name); err != nil {
		return fmt.Errorf("%q: %v", host, err)
	}
	r.name = name
	return nil
}

// checkHostname checks a lower-case host name without a final dot.
func checkHostname(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("not a valid host name")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return errors.New("not a valid host name (empty or overlong label)")
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				if c == '*' {
					return errors.New("a wildcard is allowed only as a whole first label, as in *.example.com")
				}
				return fmt.Errorf("not a valid host name (character %q)", c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return errors.New("not a valid IP address or host name")
	}
	return nil
}

func (r *Rule) parsePorts(s string) error {
	if strings.TrimSpace(s) == "*" {
		return nil
	}
	if strings.TrimSpace(s) == "" {
		return errors.New("the ports are empty; use * for any port")
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "*" {
			return errors.New("\"*\" for any port must stand alone")
		}
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parsePort(strings.TrimSpace(lo))
		if err != nil {
			return err
		}
		b := a
		if isRange {
			if b, err = parsePort(strings.TrimSpace(hi)); err != nil {
				return err
			}
			if b < a {
				return fmt.Errorf("port range %q runs backwards", item)
			}
		}
		r.ports = append(r.ports, portRange{a, b})
	}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || (len(s) > 1 && s[0] == '0') || s[0] == '+' {
		return 0, fmt.Errorf("%q is not a port number (0-65535)", s)
	}
	return uint16(n), nil
}

// Match reports whether r allows a forward of kind k to (for L and D) or
// bound on (for R) host and port. host is an IP address (IPv6 with or
// without brackets) or a host name; an empty host for R means a loopback
// bind and matches rules that allow 127.0.0.1, ::1 or localhost. IP and
// CIDR rules match only IP addresses, host name rules only names (without
// regard to case or a final dot), and "*.example.com" only names below
// example.com. Port 0 (any free port, for R) matches only rules whose
// PORTS are "*" or include 0.
func (r Rule) Match(k Kind, host string, port int) bool {
	if !r.Has(k) || !r.matchPort(port) {
		return false
	}
	if k == KindRemote && host == "" {
		return r.matchHost("127.0.0.1") || r.matchHost("::1") || r.matchHost("localhost")
	}
	return r.matchHost(host)
}

func (r Rule) matchPort(port int) bool {
	if port < 0 || port > 65535 {
		return false
	}
	if r.ports == nil {
		return true
	}
	for _, pr := range r.ports {
		if int(pr.lo) <= port && port <= int(pr.hi) {
			return true
		}
	}
	return false
}

func (r Rule) matchHost(host string) bool {
	if r.anyHost {
		return true
	}
	if a, ok := parseIP(host); ok {
		return r.addr.IsValid() && r.addr == a || r.prefix.IsValid() && r.prefix.Contains(a)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" {
		return false
	}
	return r.name != "" && name == r.name ||
		r.suffix != "" && len(name) > len(r.suffix) && strings.HasSuffix(name, r.suffix)
}

// parseIP parses an IP literal (IPv6 with or without brackets), dropping
// any zone and unmapping IPv4-mapped IPv6.
func parseIP(host string) (netip.Addr, bool) {
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// isLoopback reports whether host names a loopback address: an empty host
// (the default bind), "localhost", or an IP in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if host == "" || strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, ok := parseIP(host)
	return ok && a.IsLoopback()
}

package auth

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Policy holds the server-wide allow rules (--allow). A Policy must not be
// modified while Check runs; Check may be called concurrently.
type Policy struct {
	Global []Rule
}

// Check decides whether user u (nil: no user rules) may open a forward of
// kind k to (L, D) or bound on (R) host and port. The forward must pass the
// global rules and the user's rules; for each rule set, if it has no rule
// of kind k the default applies (L and D: anything; R: loopback binds
// only), otherwise one of its rules of kind k must match. Check returns nil
// or a *DeniedError naming the rule set that refused.
func (p *Policy) Check(u *User, k Kind, host string, port int) error {
	var global []Rule
	if p != nil {
		global = p.Global
	}
	if err := checkSet(global, "", k, host, port); err != nil {
		return err
	}
	if u != nil {
		return checkSet(u.Rules, u.Name, k, host, port)
	}
	return nil
}

func checkSet(rules []Rule, user string, k Kind, host string, port int) error {
	var ofKind []string
	for _, r := range rules {
		if !r.Has(k) {
			continue
		}
		if r.Match(k, host, port) {
			return nil
		}
		ofKind = append(ofKind, r.Text)
	}
	if len(ofKind) == 0 && (k != KindRemote || isLoopback(host)) {
		return nil // the default for this kind allows it
	}
	return &DeniedError{Kind: k, Host: host, Port: port, User: user, Rules: ofKind}
}

// DeniedError reports a forward refused by an allow rule set.
type DeniedError struct {
	Kind Kind
	Host string
	Port int
	// User is the user whose rules refused the forward, or "" for the
	// global --allow rules.
	User string
	// Rules lists the refusing set's rules of this kind, as written; empty
	// when the default for the kind (R: loopback only) refused.
	Rules []string
}

// RuleSet names the refusing rule set: "the global --allow rules" or
// "user NAME's rules".
func (e *DeniedError) RuleSet() string {
	if e.User == "" {
		return "the global --allow rules"
	}
	return fmt.Sprintf("user %q's rules", e.User)
}

func (e *DeniedError) Error() string {
	var what string
	hp := net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	switch e.Kind {
	case KindRemote:
		if e.Host == "" {
			hp = "port " + strconv.Itoa(e.Port)
		}
		what = "-R listener on " + hp
	case KindDynamic:
		what = "-D connection to " + hp
	default:
		what = "-L connection to " + hp
	}
	example := e.Kind.String() + ":" + ruleHost(e.Host) + ":" + strconv.Itoa(e.Port)
	if len(e.Rules) == 0 {
		return fmt.Sprintf("%s refused by %s: with no R rules only loopback binds (127.0.0.0/8, ::1, localhost) are allowed; "+
			"bind to 127.0.0.1 instead, or ask the server's administrator to add a rule such as %s",
			what, e.RuleSet(), example)
	}
	target := "destination"
	if e.Kind == KindRemote {
		target = "bind address"
	}
	return fmt.Sprintf("%s refused by %s: no %s rule matches (%s rules: %s); "+
		"use an allowed %s, or ask the server's administrator to add a rule such as %s",
		what, e.RuleSet(), e.Kind, e.Kind, strings.Join(e.Rules, ", "), target, example)
}

// ruleHost writes host as it appears in a rule.
func ruleHost(host string) string {
	if host == "" {
		return "127.0.0.1"
	}
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

package tunbench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Via is another tunnel to measure beside braid: a forward that is
// already running (started by the caller, e.g. "ssh -N -L
// 19102:127.0.0.1:19101 host") whose local listen address Addr leads to
// Bench's target ([Options].Target). A Via is a plain value.
type Via struct {
	// Name labels the tunnel's column, e.g. "ssh". Letters, digits, '.',
	// '_' and '-'; at most 32 characters; not "direct" or "braid".
	Name string `json:"name"`
	// Addr is the HOST:PORT the forward listens on.
	Addr string `json:"addr"`
	// PIDs are the processes that make up the tunnel (e.g. the ssh client
	// and the sshd processes serving its connection). Their summed VmRSS
	// is reported with and without idle connections; without PIDs the
	// memory rows show "—" for this tunnel.
	PIDs []int `json:"pids,omitempty"`
}

// ParseVia parses the --via flag's value NAME=ADDR[,PID...], e.g.
// "ssh=127.0.0.1:19102,4242,4250".
func ParseVia(s string) (Via, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Via{}, fmt.Errorf("--via %q: want NAME=HOST:PORT[,PID...], e.g. ssh=127.0.0.1:19102,4242", s)
	}
	fields := strings.Split(rest, ",")
	v := Via{Name: name, Addr: fields[0]}
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return Via{}, fmt.Errorf("--via %q: %q is not a process id (want NAME=HOST:PORT[,PID...])", s, f)
		}
		v.PIDs = append(v.PIDs, pid)
	}
	if err := v.check(); err != nil {
		return Via{}, fmt.Errorf("--via %q: %w", s, err)
	}
	return v, nil
}

// String returns v in the --via flag's form, NAME=ADDR[,PID...].
func (v Via) String() string {
	var b strings.Builder
	b.WriteString(v.Name + "=" + v.Addr)
	for _, pid := range v.PIDs {
		b.WriteString("," + strconv.Itoa(pid))
	}
	return b.String()
}

// check validates v's fields (not whether anything listens at Addr).
func (v Via) check() error {
	if v.Name == "" || len(v.Name) > 32 || strings.IndexFunc(v.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return fmt.Errorf("name %q: use 1 to 32 letters, digits, '.', '_' or '-'", v.Name)
	}
	if v.Name == "direct" || v.Name == "braid" {
		return fmt.Errorf("name %q is taken by a built-in column: choose another", v.Name)
	}
	if err := checkHostPort(v.Addr, false); err != nil {
		return err
	}
	for _, pid := range v.PIDs {
		if pid <= 0 {
			return fmt.Errorf("process id %d: must be positive", pid)
		}
	}
	return nil
}

// checkHostPort checks that addr is HOST:PORT with a numeric port
// (which may be 0 only if zeroOK).
func checkHostPort(addr string, zeroOK bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("address %q: want HOST:PORT, e.g. 127.0.0.1:19102", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (p == 0 && !zeroOK) {
		return fmt.Errorf("address %q: the port must be a number from 1 to 65535", addr)
	}
	return nil
}

// identify asks whatever answers at addr for its target identity and
// checks it is tgt's: the via leads to this run's target.
func identify(ctx context.Context, addr string, tgt *target) error {
	ctx, cancel := context.WithTimeoutCause(ctx, 10*time.Second, fmt.Errorf("no answer within 10s"))
	defer cancel()
	c, stop, err := dial(ctx, addr)
	if err != nil {
		return err
	}
	defer stop()
	defer c.Close()
	if _, err := c.Write([]byte{cmdIdentify}); err != nil {
		return ctxErr(ctx, err)
	}
	var id [16]byte
	if _, err := io.ReadFull(c, id[:]); err != nil {
		return ctxErr(ctx, fmt.Errorf("reading the target's identity: %w", err))
	}
	if !bytes.Equal(id[:], tgt.id[:]) {
		return fmt.Errorf("it leads to some other bench target, not this run's at %s", tgt.addr())
	}
	return nil
}

// sumRSS returns the summed VmRSS of pids in bytes.
func sumRSS(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		v, err := readRSS(pid)
		if err != nil {
			return 0, fmt.Errorf("RSS of process %d: %w", pid, err)
		}
		sum += v
	}
	return sum, nil
}

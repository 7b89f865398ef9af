//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package yamux

import (
	"errors"
	"net"
)

// peekable reports false: on this system detection reads the first byte
// and replays it through a wrapper.
func peekable(net.Conn) bool { return false }

func peek(net.Conn, []byte) (int, error) { return 0, errors.New("yamux: peek not supported") }

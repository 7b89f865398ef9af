package tunbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a child gets to exit after SIGTERM before it is
// killed.
const stopGrace = 5 * time.Second

// child is one running braid process. Its stderr is parsed line by line;
// the lines tests wait for are kept, the rest only in a short tail for
// error messages. Methods are safe for concurrent use.
type child struct {
	name string // "server" or "client", for messages
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been waited for

	mu      sync.Mutex
	partial []byte              // an unterminated last line
	records []map[string]string // parsed lines worth waiting for
	tail    []string            // last few raw lines
	changed chan struct{}       // closed and replaced on every new record
	waitErr error               // set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// tailLines is how many raw log lines a child keeps for error messages.
const tailLines = 12

// childEnv returns the environment for a child: the current one without
// BRAID_* variables and the home/XDG directories, plus a fresh home under
// dir and the token.
func childEnv(dir, token string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BRAID_"), k == "HOME", k == "XDG_STATE_HOME", k == "XDG_CONFIG_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+dir,
		"XDG_STATE_HOME="+dir+"/state",
		"XDG_CONFIG_HOME="+dir+"/config",
		"BRAID_TOKEN="+token,
	)
}

// startChild starts binary with args and the given environment.
func startChild(name, binary string, args, env []string) (*child, error) {
	c := &child{name: name, args: args, done: make(chan struct{}), changed: make(chan struct{})}
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout = c
	cmd.Stderr = c
	c.cmd = cmd
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start braid %s: %w (is %s a braid binary?)", name, err, binary)
	}
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// pid returns the child's process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// Write receives the child's output (it is the exec.Cmd's Stdout and
// Stderr) and records complete lines.
func (c *child) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.lineLocked(string(data[:i]))
		data = data[i+1:]
	}
	if len(data) > 4096 { // a runaway line: keep it bounded
		c.lineLocked(string(data))
		data = nil
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

// lineLocked records one line. c.mu is held.
func (c *child) lineLocked(line string) {
	line = strings.TrimRight(line, "\r")
	if len(c.tail) == tailLines {
		copy(c.tail, c.tail[1:])
		c.tail = c.tail[:tailLines-1]
	}
	c.tail = append(c.tail, line)
	kv := parseLogLine(line)
	switch kv["msg"] {
	case "server listening", "forward ready", "connected", "disconnected", "reconnecting":
	default:
		if kv["level"] != "ERROR" {
			return
		}
	}
	if len(c.records) < 1000 {
		c.records = append(c.records, kv)
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// logTail returns the last lines the child wrote, for error messages.
func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.tail) == 0 {
		return "(no output)"
	}
	return strings.Join(c.tail, "\n    ")
}

// mark returns a position in the child's log for waitFrom: lines logged
// after the call are at or after it.
func (c *child) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.records)
}

// waitFor waits until the child logs a line whose msg is msg and for which
// match (if not nil) returns true, and returns that line's keys. It fails
// if the child exits, logs an ERROR, or ctx ends first.
func (c *child) waitFor(ctx context.Context, msg string, match func(map[string]string) bool) (map[string]string, error) {
	return c.waitFrom(ctx, 0, msg, match)
}

// waitFrom is waitFor considering only lines from position from (see
// mark) on.
func (c *child) waitFrom(ctx context.Context, from int, msg string, match func(map[string]string) bool) (map[string]string, error) {
	seen := from
	for {
		c.mu.Lock()
		recs := c.records[seen:]
		seen = len(c.records)
		changed := c.changed
		c.mu.Unlock()
		for _, kv := range recs {
			if kv["level"] == "ERROR" {
				return nil, fmt.Errorf("braid %s failed: %s\n  its log:\n    %s", c.name, kv["msg"], c.logTail())
			}
			if kv["msg"] == msg && (match == nil || match(kv)) {
				return kv, nil
			}
		}
		select {
		case <-changed:
		case <-c.done:
			// Pick up lines written just before the exit.
			c.mu.Lock()
			more := len(c.records) > seen
			err := c.waitErr
			c.mu.Unlock()
			if more {
				continue
			}
			return nil, fmt.Errorf("braid %s exited (%v) before logging %q\n  its log:\n    %s", c.name, err, msg, c.logTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("braid %s did not log %q in time (%w)\n  its log:\n    %s", c.name, msg, context.Cause(ctx), c.logTail())
		}
	}
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child, kills it if it has not exited after
// stopGrace, and waits for it. It returns nil if the child exited with
// status 0 in response to SIGTERM, and an error describing how it ended
// otherwise. Later calls return the first call's result.
func (c *child) stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stopNow() })
	return c.stopErr
}

func (c *child) stopNow() error {
	if c.exited() {
		c.mu.Lock()
		err := c.waitErr
		c.mu.Unlock()
		return fmt.Errorf("braid %s exited on its own (%v)\n  its log:\n    %s", c.name, err, c.logTail())
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = c.cmd.Process.Kill()
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("braid %s did not exit within %v of SIGTERM; killed it\n  its log:\n    %s", c.name, stopGrace, c.logTail())
	}
	c.mu.Lock()
	err := c.waitErr
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("braid %s ended with %v after SIGTERM (want exit status 0)\n  its log:\n    %s", c.name, err, c.logTail())
	}
	return nil
}

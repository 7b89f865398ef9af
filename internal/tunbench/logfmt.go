package tunbench

import (
	"strconv"
	"strings"
)

// parseLogLine splits one slog text-format line (key=value pairs separated
// by spaces; a value is either bare or a Go-quoted string) into a map. It
// never fails: a malformed pair ends the parse and what was read so far is
// returned. Keys without '=' are ignored.
func parseLogLine(line string) map[string]string {
	kv := make(map[string]string)
	s := line
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return kv
		}
		eq := strings.IndexAny(s, "= \t")
		if eq < 0 {
			return kv
		}
		if s[eq] != '=' {
			// A bare word without a value: skip it.
			s = s[eq:]
			continue
		}
		key := s[:eq]
		s = s[eq+1:]
		if key == "" {
			return kv
		}
		if strings.HasPrefix(s, `"`) {
			end := quotedEnd(s)
			if end < 0 {
				return kv
			}
			v, err := strconv.Unquote(s[:end])
			if err != nil {
				return kv
			}
			kv[key] = v
			s = s[end:]
			continue
		}
		sp := strings.IndexAny(s, " \t")
		if sp < 0 {
			kv[key] = s
			return kv
		}
		kv[key] = s[:sp]
		s = s[sp:]
	}
}

// quotedEnd returns the index just past the closing quote of the Go
// string literal s starts with, or -1 if it is not closed.
func quotedEnd(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

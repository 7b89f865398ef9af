//go:build unix

package tunbench

import "syscall"

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit to its hard
// limit (children started afterwards inherit it) and returns the new soft
// limit.
func raiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	// Setrlimit also when Cur already equals Max: calling it is what makes
	// the Go runtime let children inherit the raised limit.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return uint64(r.Cur), nil
}

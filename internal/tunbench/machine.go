package tunbench

import (
	"bufio"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a benchmark ran.
type Machine struct {
	// CPUs is runtime.NumCPU() of the bench process.
	CPUs int `json:"cpus"`
	// OS and Arch are GOOS and GOARCH.
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// CPUModel is the first "model name" of /proc/cpuinfo ("" if unknown).
	CPUModel string `json:"cpu_model"`
	// GoVersion is the Go version the measured binary was built with
	// (this process's if the binary's build info cannot be read).
	GoVersion string `json:"go_version"`
}

func machineInfo(binary string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if bi, err := buildinfo.ReadFile(binary); err == nil {
		m.GoVersion = bi.GoVersion
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// errNoRSS is returned where /proc/PID/status does not exist.
var errNoRSS = errors.New("resident set size is only available on Linux (/proc/PID/status)")

// readRSS returns the resident set size (VmRSS) of process pid in bytes.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && runtime.GOOS != "linux" {
			return 0, errNoRSS
		}
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected VmRSS line %q", pid, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line (has the process exited?)", pid)
}

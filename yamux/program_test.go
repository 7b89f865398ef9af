package yamux_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestYamuxProgramSwitchesByImportPath copies testdata/yamuxprog, a small
// echo server and client written against github.com/hashicorp/yamux with
// its own test, and runs that test twice: unmodified (against real
// yamux) and with only its import lines changed to this package.
//
// It runs offline: the nested module gets braid's go.sum and a replace
// directive pointing at this checkout, and the go command may only use
// the module cache (GOPROXY=off), which holds every module braid needs.
func TestYamuxProgramSwitchesByImportPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a separate module")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	const (
		from = `"github.com/hashicorp/yamux"`
		to   = `"github.com/braidmux/braid/yamux"`
	)
	for _, tc := range []struct {
		name string
		swap bool
	}{{"hashicorp", false}, {"braid", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS("testdata/yamuxprog")); err != nil {
				t.Fatal(err)
			}
			sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) string {
				t.Helper()
				cmd := exec.Command(goBin, args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			run("mod", "edit", "-replace", "github.com/braidmux/braid="+root)
			if tc.swap {
				changed := 0
				err := fs.WalkDir(os.DirFS(dir), ".", func(path string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
						return err
					}
					p := filepath.Join(dir, path)
					src, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					// Only the import line: the rest of the file is untouched.
					lines := bytes.Split(src, []byte("\n"))
					for i, l := range lines {
						if strings.TrimSpace(string(l)) == from {
							lines[i] = bytes.Replace(l, []byte(from), []byte(to), 1)
							changed++
						}
					}
					return os.WriteFile(p, bytes.Join(lines, []byte("\n")), 0o644)
				})
				if err != nil {
					t.Fatal(err)
				}
				if changed != 2 {
					t.Fatalf("changed %d import lines, want 2 (main.go, main_test.go)", changed)
				}
			}
			out := run("test", "-count=1", "-v", ".")
			t.Logf("go test in the %s copy:\n%s", tc.name, out)
			if uses := strings.Contains(run("list", "-deps", "."), "github.com/braidmux/braid/session"); uses != tc.swap {
				t.Errorf("program depends on braid's session: %v, want %v", uses, tc.swap)
			}
		})
	}
}

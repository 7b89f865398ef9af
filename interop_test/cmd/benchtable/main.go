// Command benchtable turns `go test -bench` output whose benchmarks have
// one sub-benchmark per transport (BenchmarkBulk1/tcp, /braid, …) into a
// markdown table with each value's ratio to the reference transport.
//
//	go test -run '^$' -bench . ./interop_test | go run ./interop_test/cmd/benchtable
//
// Each benchmark gets one row per metric it reports: MB/s when it sets
// bytes, else ns/op, plus any custom metric (p50-ns, p99-ns, B/stream);
// -all adds B/op and allocs/op. With -count above 1 the median of the
// runs is shown. Benchmarks without a sub-benchmark named by -ref (such
// as ConnCeiling, which is raw TCP only) get a table of their own after
// the main one, one per set of sub-benchmarks, with ratios to the first
// sub-benchmark of the set. Lines that are not benchmark results are
// ignored, except cpu:, goos: and goarch:, which are printed under the
// tables.
//
// It imports only the standard library and is not imported by anything.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	ref := flag.String("ref", "tcp", "sub-benchmark the ratios are relative to")
	all := flag.Bool("all", false, "also show B/op and allocs/op")
	flag.Parse()
	out, err := render(os.Stdin, *ref, *all)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

// resultLine matches "BenchmarkName/sub-8   1234   5678 ns/op   9.1 MB/s …".
var resultLine = regexp.MustCompile(`^Benchmark([^\s/]+)/(\S+?)(?:-\d+)?\s+\d+\s+(.+)$`)

type table struct {
	benches []string                       // in order of appearance
	subs    []string                       // in order of appearance
	of      map[string][]string            // bench → its subs, in order of appearance
	units   map[string][]string            // bench → units in order
	values  map[[3]string][]float64        // bench, sub, unit → runs
	seen    map[string]map[string]struct{} // bench → units
	notes   []string
}

func parse(r io.Reader) (*table, error) {
	t := &table{units: map[string][]string{}, of: map[string][]string{}, values: map[[3]string][]float64{}, seen: map[string]map[string]struct{}{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"goos:", "goarch:", "cpu:"} {
			if strings.HasPrefix(line, p) && !slices.Contains(t.notes, line) {
				t.notes = append(t.notes, line)
			}
		}
		m := resultLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		bench, sub := m[1], m[2]
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("odd value/unit fields in %q", line)
		}
		if !slices.Contains(t.benches, bench) {
			t.benches = append(t.benches, bench)
			t.seen[bench] = map[string]struct{}{}
		}
		if !slices.Contains(t.subs, sub) {
			t.subs = append(t.subs, sub)
		}
		if !slices.Contains(t.of[bench], sub) {
			t.of[bench] = append(t.of[bench], sub)
		}
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("bad value %q in %q", fields[i], line)
			}
			unit := fields[i+1]
			if _, ok := t.seen[bench][unit]; !ok {
				t.seen[bench][unit] = struct{}{}
				t.units[bench] = append(t.units[bench], unit)
			}
			k := [3]string{bench, sub, unit}
			t.values[k] = append(t.values[k], v)
		}
	}
	return t, sc.Err()
}

// shown picks the metrics of a benchmark worth a row.
func shown(units []string, all bool) []string {
	var out []string
	hasBytes := slices.Contains(units, "MB/s")
	custom := false
	for _, u := range units {
		switch u {
		case "ns/op", "MB/s", "B/op", "allocs/op":
		default:
			custom = true
		}
	}
	for _, u := range units {
		switch u {
		case "ns/op":
			if !hasBytes && !custom {
				out = append(out, u)
			}
		case "B/op", "allocs/op":
			if all {
				out = append(out, u)
			}
		default:
			out = append(out, u)
		}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// display converts nanosecond metrics to microseconds for reading.
func display(unit string, v float64) (string, float64) {
	switch unit {
	case "ns/op":
		return "µs/op", v / 1e3
	case "p50-ns", "p99-ns":
		return strings.TrimSuffix(unit, "-ns") + " µs", v / 1e3
	}
	return unit, v
}

func format(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func render(r io.Reader, ref string, all bool) (string, error) {
	t, err := parse(r)
	if err != nil {
		return "", err
	}
	if len(t.benches) == 0 {
		return "", fmt.Errorf("no benchmark results with sub-benchmarks in the input")
	}
	// The main table: every benchmark with a ref sub-benchmark, with a
	// column for each sub-benchmark any of them has. The others: one table
	// per set of sub-benchmarks.
	var withRef []string
	var others [][]string // benchmarks sharing one set of subs, in order
	for _, bench := range t.benches {
		if slices.Contains(t.of[bench], ref) {
			withRef = append(withRef, bench)
			continue
		}
		i := slices.IndexFunc(others, func(g []string) bool { return slices.Equal(t.of[g[0]], t.of[bench]) })
		if i < 0 {
			others = append(others, []string{bench})
		} else {
			others[i] = append(others[i], bench)
		}
	}
	var tables []string
	if len(withRef) > 0 {
		var subs []string
		for _, s := range t.subs {
			if slices.ContainsFunc(withRef, func(bench string) bool { return slices.Contains(t.of[bench], s) }) {
				subs = append(subs, s)
			}
		}
		if i := slices.Index(subs, ref); i > 0 {
			subs = append([]string{ref}, slices.Delete(slices.Clone(subs), i, i+1)...)
		}
		tables = append(tables, t.render(withRef, subs, ref, all))
	}
	for _, g := range others {
		subs := t.of[g[0]]
		tables = append(tables, t.render(g, subs, subs[0], all))
	}
	out := strings.Join(tables, "\n")
	if len(t.notes) > 0 {
		out += "\n" + strings.Join(t.notes, "; ") + "\n"
	}
	return out, nil
}

// render is the markdown table of benches, one column per sub in subs,
// with ratios to ref (which subs holds).
func (t *table) render(benches, subs []string, ref string, all bool) string {
	var b strings.Builder
	b.WriteString("| benchmark | metric |")
	for _, s := range subs {
		if s == ref {
			b.WriteString(" " + s + " |")
		} else {
			fmt.Fprintf(&b, " %s (÷ %s) |", s, ref)
		}
	}
	b.WriteString("\n|---|---|")
	for range subs {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, bench := range benches {
		for _, unit := range shown(t.units[bench], all) {
			label, _ := display(unit, 0)
			fmt.Fprintf(&b, "| %s | %s |", bench, label)
			refRuns := t.values[[3]string{bench, ref, unit}]
			for _, s := range subs {
				runs := t.values[[3]string{bench, s, unit}]
				if len(runs) == 0 {
					b.WriteString(" – |")
					continue
				}
				v := median(runs)
				_, dv := display(unit, v)
				cell := format(dv)
				if s != ref && len(refRuns) > 0 && median(refRuns) != 0 {
					cell += fmt.Sprintf(" (%s×)", format(v/median(refRuns)))
				}
				b.WriteString(" " + cell + " |")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

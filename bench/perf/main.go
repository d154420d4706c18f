// Command perf runs every benchmark behind docs/performance.md three times and prints one Markdown table: for
// each figure the median of the runs, each run's value, and the 1-minute load average before and after each
// run, so that a figure is never quoted without the load it was measured under (`make perf`).
//
// The contract with a bench: run with -json, its LAST line of standard output is one JSON object of named
// figures, all numbers (it may print anything before it). Go benchmarks (`go test -bench`) are parsed from
// their result line instead. Each bench is built once before its runs, so compiling is not measured. A bench
// that fails, or whose last line is not such an object (one that does not take -json yet), is reported with a
// clear error and the others still run; the command then exits 1.
//
//	go run ./bench/perf                     # every bench, three runs each
//	go run ./bench/perf -only testbed,scheduler -runs 5
//	go run ./bench/perf -list
//
// The testbed bench starts real runc sandboxes: it needs root, runc and the built-in images
// (infra/images/build.sh, -images). The billing and marketplace benches use Postgres when -db names a server
// (default: $TAMARACK_TEST_POSTGRES), else SQLite.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bench is one benchmark the table reports.
type bench struct {
	name string
	what string // one line: what it measures, for -list
	// build makes the binary in dir and returns the command line of one run.
	build func(ctx context.Context, dir string) ([]string, error)
	// parse turns a run's standard output into figures; nil means the -json contract (lastLineFigures).
	parse func(stdout []byte) (map[string]float64, error)
	// check says why this host cannot run it (nil when it can).
	check func() error
}

// run is one run's figures and the load around it.
type run struct {
	figures            map[string]float64
	loadStart, loadEnd float64
	elapsed            time.Duration
}

type options struct {
	runs        int
	timeout     time.Duration
	db          string
	images      string
	testbedN    int
	mktDuration time.Duration
	mktRate     int
	billingN    int
	stdout      io.Writer
	stderr      io.Writer
}

func main() {
	o := options{stdout: os.Stdout, stderr: os.Stderr}
	flag.IntVar(&o.runs, "runs", 3, "runs of each bench (the table shows their median)")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "limit of one run")
	flag.StringVar(&o.db, "db", os.Getenv("TAMARACK_TEST_POSTGRES"), "Postgres server URL for the billing and marketplace benches (empty: SQLite)")
	flag.StringVar(&o.images, "images", "/var/cache/tamarack-images/current", "built-in sandbox images (infra/images/build.sh's output) for the testbed bench")
	flag.IntVar(&o.testbedN, "testbed-n", 20, "sandboxes per testbed run")
	flag.DurationVar(&o.mktDuration, "marketplace-duration", 20*time.Second, "measured duration of a marketplace run")
	flag.IntVar(&o.mktRate, "marketplace-rate", 5000, "searches/s offered by the open-loop marketplace run")
	flag.IntVar(&o.billingN, "billing-events", 300_000, "usage events per billing run")
	only := flag.String("only", "", "comma-separated benches to run (default: all; -list names them)")
	list := flag.Bool("list", false, "list the benches and exit")
	flag.Parse()
	all := benches(o)
	if *list {
		for _, b := range all {
			fmt.Fprintf(o.stdout, "%-12s %s\n", b.name, b.what)
		}
		return
	}
	var chosen []bench
	for _, b := range all {
		if *only == "" || slices.Contains(strings.Split(*only, ","), b.name) {
			chosen = append(chosen, b)
		}
	}
	if len(chosen) == 0 {
		fmt.Fprintf(o.stderr, "perf: no bench named %q (-list names them)\n", *only)
		os.Exit(2)
	}
	if err := perf(context.Background(), o, chosen); err != nil {
		fmt.Fprintln(o.stderr, "perf:", err)
		os.Exit(1)
	}
}

// benches is the table's benches, in the order docs/performance.md gives their figures.
func benches(o options) []bench {
	goBuild := func(pkg string, args ...string) func(context.Context, string) ([]string, error) {
		return func(ctx context.Context, dir string) ([]string, error) {
			bin := filepath.Join(dir, filepath.Base(pkg))
			if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
			}
			return append([]string{bin}, args...), nil
		}
	}
	dbArgs := func() []string {
		if o.db == "" {
			return nil
		}
		return []string{"-db", o.db}
	}
	return []bench{
		{
			name:  "testbed",
			what:  "sandbox launch latency on the local pool (runc), and the runtime's own start in the same run",
			build: goBuild("./bench/testbed", "-json", "-n", strconv.Itoa(o.testbedN), "-images", o.images),
			check: func() error {
				if os.Geteuid() != 0 {
					return errors.New("runs runc sandboxes: run as root")
				}
				if _, err := exec.LookPath("runc"); err != nil {
					return errors.New("runc not found (apt-get install runc)")
				}
				if _, err := os.Stat(o.images); err != nil {
					return fmt.Errorf("no built-in images at %s (infra/images/build.sh, or -images)", o.images)
				}
				return nil
			},
		},
		{
			name: "scheduler",
			what: "placements/s of the scheduler's index, 1,000 nodes × 8 GPUs (go test -bench BenchmarkSchedule)",
			build: func(ctx context.Context, dir string) ([]string, error) {
				bin := filepath.Join(dir, "placement.test")
				if out, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./testbed/placement").CombinedOutput(); err != nil {
					return nil, fmt.Errorf("go test -c ./testbed/placement: %v\n%s", err, out)
				}
				return []string{bin, "-test.run", "^$", "-test.bench", "^BenchmarkSchedule$", "-test.benchtime", "20x"}, nil
			},
			parse: goBenchFigures,
		},
		{
			name: "marketplace",
			what: "catalogue search without the answer cache, varied queries, 200 clients, 10,000 listings (-db's database)",
			build: goBuild("./bench/marketplace", append([]string{"-json", "-cache-ttl=-1s", "-clients", "200",
				"-duration", o.mktDuration.String()}, dbArgs()...)...),
		},
		{
			name: "marketplace-sqlite",
			what: "the same on SQLite",
			build: goBuild("./bench/marketplace", "-json", "-cache-ttl=-1s", "-clients", "200",
				"-duration", o.mktDuration.String()),
		},
		{
			name: "marketplace-floor",
			what: "the HTTP floor of the same 200 clients: one fixed, pre-rendered answer through the same stack, no search",
			build: goBuild("./bench/marketplace", "-json", "-floor", "-clients", "200",
				"-duration", o.mktDuration.String()),
		},
		{
			name: "marketplace-open",
			what: "catalogue search on SQLite at a fixed offered rate (-marketplace-rate) from 200 clients, timed from when each request was due",
			build: goBuild("./bench/marketplace", "-json", "-cache-ttl=-1s", "-clients", "200",
				"-rate", strconv.Itoa(o.mktRate), "-duration", o.mktDuration.String()),
		},
		{
			name:  "billing",
			what:  "metering: usage events charged per second, end to end, exactly once",
			build: goBuild("./bench/billing", append([]string{"-json", "-events", strconv.Itoa(o.billingN)}, dbArgs()...)...),
		},
		{
			name: "billing-lag",
			what: "metering lag at 40,000 events/s offered, exactly once",
			build: goBuild("./bench/billing", append([]string{"-json", "-rate", "40000",
				"-events", strconv.Itoa(max(o.billingN, 400000))}, dbArgs()...)...),
		},
	}
}

// perf runs each bench o.runs times and prints the table; the error lists the benches that failed.
func perf(ctx context.Context, o options, bs []bench) error {
	dir, err := os.MkdirTemp("", "tamarack-perf-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	results := map[string][]run{}
	var failed []error
	for _, b := range bs {
		runs, err := runBench(ctx, o, b, dir)
		if err != nil {
			fmt.Fprintf(o.stderr, "perf: %s: %v\n", b.name, err)
			failed = append(failed, fmt.Errorf("%s: %w", b.name, err))
			continue
		}
		results[b.name] = runs
	}
	printTable(o.stdout, bs, results, o.runs)
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d benches failed:\n  %v", len(failed), len(bs), errors.Join(failed...))
	}
	return nil
}

func runBench(ctx context.Context, o options, b bench, dir string) ([]run, error) {
	if b.check != nil {
		if err := b.check(); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.stderr, "perf: %s: building\n", b.name)
	cmdline, err := b.build(ctx, dir)
	if err != nil {
		return nil, err
	}
	parse := b.parse
	if parse == nil {
		parse = lastLineFigures
	}
	var runs []run
	for i := range o.runs {
		fmt.Fprintf(o.stderr, "perf: %s: run %d of %d: %s\n", b.name, i+1, o.runs, strings.Join(cmdline, " "))
		r, err := runOnce(ctx, o.timeout, cmdline, parse)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// runOnce runs cmdline once between two readings of the load average and parses its figures.
func runOnce(ctx context.Context, timeout time.Duration, cmdline []string, parse func([]byte) (map[string]float64, error)) (run, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := run{loadStart: load1()}
	t0 := time.Now()
	err := cmd.Run()
	r.elapsed, r.loadEnd = time.Since(t0), load1()
	if err != nil {
		if strings.Contains(stderr.String(), "flag provided but not defined: -json") {
			return r, errors.New("it does not take -json yet: it must print its figures as one JSON object on its last line of output")
		}
		return r, fmt.Errorf("%v\n%s", err, tail(stderr.String(), 2000))
	}
	figs, err := parse(stdout.Bytes())
	if err != nil {
		return r, err
	}
	delete(figs, "load1_start") // the runner's own readings, taken around every kind of bench, are the ones shown
	delete(figs, "load1_end")
	r.figures = figs
	return r, nil
}

// lastLineFigures reads the -json contract: the last non-empty line of out is one JSON object of numbers.
func lastLineFigures(out []byte) (map[string]float64, error) {
	lines := strings.Split(strings.TrimRight(string(out), "\n\r\t "), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(last, "{") {
		return nil, fmt.Errorf("its last line of output is not a JSON object of figures (does it take -json?): %q", tail(last, 200))
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(last), &raw); err != nil {
		return nil, fmt.Errorf("its last line of output is not a JSON object of figures: %v: %q", err, tail(last, 200))
	}
	figs := map[string]float64{}
	for k, v := range raw {
		f, ok := v.(float64)
		if !ok {
			return nil, fmt.Errorf("figure %q is %T, not a number", k, v)
		}
		figs[k] = f
	}
	if len(figs) == 0 {
		return nil, errors.New("its JSON object of figures is empty")
	}
	return figs, nil
}

// goBenchFigures reads `go test -bench` output: every metric of every result line, named
// <benchmark>_<unit> (BenchmarkSchedule-2  20  53 ns/op  1380000 placements/s →
// BenchmarkSchedule_ns/op, BenchmarkSchedule_placements/s).
func goBenchFigures(out []byte) (map[string]float64, error) {
	line := regexp.MustCompile(`(?m)^(Benchmark\S*?)(?:-\d+)?\s+\d+\s+(.*)$`)
	figs := map[string]float64{}
	for _, m := range line.FindAllSubmatch(out, -1) {
		f := strings.Fields(string(m[2]))
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %v", m[0], err)
			}
			figs[string(m[1])+"_"+f[i+1]] = v
		}
	}
	if len(figs) == 0 {
		return nil, fmt.Errorf("no benchmark result line in its output: %q", tail(string(out), 500))
	}
	return figs, nil
}

// printTable writes one row per figure: the median of the runs, each run's value, and each run's load.
func printTable(w io.Writer, bs []bench, results map[string][]run, runs int) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n%s, host %s, %d CPUs, %s; median of %d runs; load = 1-minute load average before → after each run\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runtime.Version(), runs)
	fmt.Fprintln(w, "| bench | figure | median | each run | load (each run) |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, b := range bs {
		rs, ok := results[b.name]
		if !ok {
			fmt.Fprintf(w, "| %s | (failed: see above) | | | |\n", b.name)
			continue
		}
		var loads []string
		for _, r := range rs {
			loads = append(loads, fmt.Sprintf("%.2f → %.2f", r.loadStart, r.loadEnd))
		}
		var names []string
		for k := range rs[0].figures {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			var vals []float64
			var each []string
			for _, r := range rs {
				v, ok := r.figures[k]
				if !ok {
					v = math.NaN()
				}
				vals = append(vals, v)
				each = append(each, number(v))
			}
			fmt.Fprintf(w, "| %s | %s | **%s** | %s | %s |\n", b.name, k, number(median(vals)), strings.Join(each, ", "), strings.Join(loads, ", "))
		}
	}
}

// median of vs (the mean of the middle two for an even count); NaN when any run lacks the figure.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	for _, v := range s {
		if math.IsNaN(v) {
			return math.NaN()
		}
	}
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func number(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case math.Abs(v) >= 1000:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	case math.Abs(v) < 1:
		return strconv.FormatFloat(v, 'g', 3, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// load1 is the 1-minute load average (-1 when /proc/loadavg cannot be read).
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		return -1
	}
	return f
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

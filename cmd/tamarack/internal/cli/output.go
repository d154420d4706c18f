package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"
)

// isTerminal says whether w is a terminal: progress bars and redrawn lines go only there.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printJSON writes v as indented JSON, the --output json form of every command.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns: a header row, then rows.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes "key: value" lines, the keys aligned.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// microPerCredit: money is integer micro-credits everywhere; 1 credit is 1,000,000 micro-credits.
const microPerCredit = 1_000_000

// credits formats micro-credits as credits with thousands separators and up to six decimals, never through
// a float: 12_345_600_000 is "12,345.6", -1_500_000 is "-1.5".
func credits(micro int64) string {
	neg := micro < 0
	u := uint64(micro)
	if neg {
		u = uint64(-(micro + 1)) + 1 // no overflow at math.MinInt64
	}
	whole, frac := u/microPerCredit, u%microPerCredit
	s := fmt.Sprint(whole)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac > 0 {
		b.WriteString(strings.TrimRight(fmt.Sprintf(".%06d", frac), "0"))
	}
	return b.String()
}

func ptr[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// progress draws a one-line bar on a terminal, as bytes arrive: "name  45% [=====>    ] 12.0/26.4 MiB".
// On anything else it draws nothing.
type progress struct {
	w     io.Writer
	name  string
	total int64
	done  int64
	on    bool
	last  int
}

func newProgress(w io.Writer, name string, total int64) *progress {
	return &progress{w: w, name: name, total: total, on: isTerminal(w), last: -1}
}

func (p *progress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	p.draw(false)
	return len(b), nil
}

func (p *progress) draw(final bool) {
	if !p.on {
		return
	}
	pct := 100
	if p.total > 0 {
		pct = int(p.done * 100 / p.total)
	}
	if pct == p.last && !final {
		return
	}
	p.last = pct
	const width = 30
	fill := pct * width / 100
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	fmt.Fprintf(p.w, "\r%s %3d%% [%s] %s/%s", p.name, pct, bar, size(p.done), size(p.total))
	if final {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) finish() { p.draw(true) }

func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

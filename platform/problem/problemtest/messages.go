package problemtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
)

// Message is one place in the source where a problem's reader-facing text is written, found by Messages.
type Message struct {
	// Kind is "detail" (WithDetail called in a function body: an occurrence's detail), "detail_key" and
	// "field_key" (the catalogue key given to WithDetailMsg or AddMsg), or "field" (the message given to a
	// problem.Fields Add or Check).
	Kind string
	// Text is the literal English text or key; empty when the argument is not a literal (a fmt.Sprintf, a
	// variable), which the catalogue cannot know.
	Text string
	// Formatted is true for a WithDetail with format arguments: its text carries values, so it cannot be
	// catalogued as it is written.
	Formatted bool
	// Relay is true for WithDetail("%v", x) or ("%s", x): it passes on another system's message (a Go error,
	// Stripe's or a backend's answer) as it came, which no catalogue can know.
	Relay bool
	// Prefix is true for a key built as a literal plus a value ("field.wrong_type."+kind): Text is the literal.
	Prefix bool
	Pos    string
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Messages walks the Go files (tests, generated files and node_modules left out) under root and returns every
// reader-facing problem text written in code: the details given to WithDetail inside functions (sentinels'
// package-level details are Declared's), the keys given to WithDetailMsg and AddMsg, and the messages given
// to a problem.Fields' Add(field, code, message) or Check(ok, field, code, message): calls with those names
// whose code argument is a snake_case string literal. A test checks each against the catalogues, so a text
// that could reach a reader in English only fails there.
func Messages(root string) ([]Message, error) {
	var out []Message
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") || strings.HasSuffix(p, ".gen.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		if f.Name.Name == "problemtest" {
			return nil
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			// The problem package's own helpers pass keys through variables; their callers are checked.
			if f.Name.Name == "problem" && (fn.Name.Name == "WithDetail" || fn.Name.Name == "WithDetailMsg" ||
				fn.Name.Name == "Add" || fn.Name.Name == "AddMsg" || fn.Name.Name == "Check" || fn.Name.Name == "CheckMsg") {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name := ""
				switch fun := c.Fun.(type) {
				case *ast.SelectorExpr:
					name = fun.Sel.Name
				case *ast.Ident:
					name = fun.Name
				}
				pos := fset.Position(c.Pos()).String()
				add := func(kind string, e ast.Expr, formatted bool) {
					m := Message{Kind: kind, Formatted: formatted, Pos: pos}
					s, ok := literal(e)
					if ok {
						m.Text = s
					} else if b, isSum := e.(*ast.BinaryExpr); isSum && b.Op == token.ADD {
						m.Text, m.Prefix = literalPrefix(b)
					}
					out = append(out, m)
				}
				switch {
				case name == "WithDetail" && len(c.Args) >= 1:
					add("detail", c.Args[0], len(c.Args) > 1)
					if f, _ := literal(c.Args[0]); len(c.Args) == 2 && (f == "%v" || f == "%s") {
						out[len(out)-1].Relay = true
					}
				case name == "WithDetailMsg" && len(c.Args) == 2:
					add("detail_key", c.Args[0], false)
				case name == "AddMsg" && len(c.Args) == 4:
					add("field_key", c.Args[2], false)
				case name == "CheckMsg" && len(c.Args) == 5:
					add("field_key", c.Args[3], false)
				case name == "Add" && len(c.Args) == 3 && isSnake(c.Args[1]):
					add("field", c.Args[2], false)
				case name == "Check" && len(c.Args) == 4 && isSnake(c.Args[2]):
					add("field", c.Args[3], false)
				}
				return true
			})
		}
		return nil
	})
	return out, err
}

func isSnake(e ast.Expr) bool {
	s, ok := literal(e)
	return ok && snake.MatchString(s)
}

// literalPrefix is the literal that starts a sum of strings ("a."+x+".b" gives "a.").
func literalPrefix(b *ast.BinaryExpr) (string, bool) {
	switch x := b.X.(type) {
	case *ast.BinaryExpr:
		if s, ok := literal(x); ok {
			return s, true
		}
		return literalPrefix(x)
	default:
		s, ok := literal(x)
		return s, ok
	}
}

package problemtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// Sentinel is a problem declared in source with a literal code: problem.New(status, "code", "title"), and
// the literal detail of a WithDetail called on it directly, if any.
type Sentinel struct {
	Code, Title, Detail string
	Pos                 string
}

// Declared walks the Go files (tests and node_modules left out) under root and returns every problem it
// declares with a literal code and title, for checks that span the whole repository (every code has a
// title in every language). A title or detail that is not a literal is left empty.
func Declared(root string) ([]Sentinel, error) {
	var out []Sentinel
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		inProblem := f.Name.Name == "problem"
		details := map[*ast.CallExpr]string{}
		ast.Inspect(f, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if sel, isSel := c.Fun.(*ast.SelectorExpr); isSel && sel.Sel.Name == "WithDetail" && len(c.Args) == 1 {
				if inner, isCall := sel.X.(*ast.CallExpr); isCall {
					if s, isLit := literal(c.Args[0]); isLit {
						details[inner] = s
					}
				}
			}
			if !callsNewDirectly(c, inProblem) || len(c.Args) != 3 {
				return true
			}
			code, ok := literal(c.Args[1])
			if !ok {
				return true
			}
			title, _ := literal(c.Args[2])
			out = append(out, Sentinel{Code: code, Title: title, Detail: details[c], Pos: fset.Position(c.Pos()).String()})
			return true
		})
		return nil
	})
	return out, err
}

func callsNewDirectly(c *ast.CallExpr, inProblem bool) bool {
	switch fn := c.Fun.(type) {
	case *ast.SelectorExpr:
		x, ok := fn.X.(*ast.Ident)
		return ok && x.Name == "problem" && fn.Sel.Name == "New"
	case *ast.Ident:
		return inProblem && fn.Name == "New"
	}
	return false
}

// literal is the value of a string literal or of a sum of them.
func literal(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		}
	case *ast.BinaryExpr:
		a, ok1 := literal(x.X)
		b, ok2 := literal(x.Y)
		return a + b, ok1 && ok2 && x.Op == token.ADD
	}
	return "", false
}

// Package problemtest checks, in tests, the problem sentinels a package declares: each must carry a detail that
// tells a caller what to do next, since a bare sentinel is what a client sees when nothing more specific is known.
// It reads source files only; it knows no service.
package problemtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// RequireDetails fails t for every package-level variable in the Go files at paths whose value is built with
// problem.New (New inside package problem) without a WithDetail call carrying a non-empty string literal, and
// for a file that declares no sentinel at all (a renamed file must not make the check pass vacuously).
func RequireDetails(t testing.TB, paths ...string) {
	t.Helper()
	for _, path := range paths {
		found, missing, err := undetailed(path)
		if err != nil {
			t.Fatal(err)
		}
		if found == 0 {
			t.Errorf("%s declares no problem sentinel", path)
		}
		for _, name := range missing {
			t.Errorf("%s: %s has no detail: declare it as problem.New(…).WithDetail(\"what the caller can do\")", path, name)
		}
	}
}

func undetailed(path string) (found int, missing []string, err error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return 0, nil, err
	}
	inProblem := f.Name.Name == "problem"
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, v := range vs.Values {
				if i >= len(vs.Names) || !callsNew(v, inProblem) {
					continue
				}
				found++
				if !hasDetail(v) {
					missing = append(missing, vs.Names[i].Name)
				}
			}
		}
	}
	return found, missing, nil
}

func callsNew(e ast.Expr, inProblem bool) bool {
	hit := false
	ast.Inspect(e, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch fn := c.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok && x.Name == "problem" && fn.Sel.Name == "New" {
				hit = true
			}
		case *ast.Ident:
			if inProblem && fn.Name == "New" {
				hit = true
			}
		}
		return !hit
	})
	return hit
}

func hasDetail(e ast.Expr) bool {
	ok := false
	ast.Inspect(e, func(n ast.Node) bool {
		c, isCall := n.(*ast.CallExpr)
		if !isCall {
			return true
		}
		sel, isSel := c.Fun.(*ast.SelectorExpr)
		if isSel && sel.Sel.Name == "WithDetail" && len(c.Args) > 0 {
			if lit, isLit := c.Args[0].(*ast.BasicLit); isLit && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && s != "" {
					ok = true
				}
			}
		}
		return !ok
	})
	return ok
}

//go:build !amd64

package local

import "fmt"

// helperInject writes x86-64 code into PID 1; elsewhere TestEscapeReplay runs without the injection.
func helperInject(string) { fmt.Println("ptrace-attach: injection is written for amd64 only") }

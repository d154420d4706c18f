package artifact

import (
	"os"
	"syscall"
)

// links is a file's hard-link count (1: only the blob itself; unknown counts as linked, kept).
func links(p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 2
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 2
}

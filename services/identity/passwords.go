package identity

import (
	"strings"
	"sync"

	"github.com/trustelem/zxcvbn/frequency"
)

// commonPasswords is the zxcvbn password list (about 30,000 of the most used passwords in leaked corpora,
// Dropbox's zxcvbn 4.4.2 as shipped by github.com/trustelem/zxcvbn), lower-cased, built on first use. It
// lives in the binary: no lookup leaves the process.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	list := frequency.FrequencyLists["passwords"]
	m := make(map[string]struct{}, len(list))
	for _, p := range list {
		m[strings.ToLower(p)] = struct{}{}
	}
	return m
})

// isCommonPassword reports whether password, ignoring case and surrounding space, is on the list.
func isCommonPassword(password string) bool {
	_, ok := commonPasswords()[strings.ToLower(strings.TrimSpace(password))]
	return ok
}

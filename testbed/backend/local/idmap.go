package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tamarack-ai/tamarack/testbed/backend"
	"github.com/tamarack-ai/tamarack/testbed/backend/local/ocispec"
)

// Each sandbox runs in its own user namespace whose uids and gids 0..65535 are a range of host ids no
// other sandbox holds: its root is an unprivileged host user, and two sandboxes never share an owner of
// files, keyrings, per-user limits or signal rights.
//
// Ranges are slots: slot N is host ids base+N*65536 … base+N*65536+65535. A slot is claimed in a
// registry directory that every local backend on the host shares (Options.HostDir/idmap, whatever its
// Root): the file <N> holds the sandbox directory that owns it. Claims take the lowest free slot under
// an exclusive flock, so concurrent Starts (in one serve or in several) never get the same range. The
// slot is recorded in launch.json and state.json and released by Remove. A slot whose owner directory no
// longer exists is free again: its sandbox was deleted without Remove (a test root, a crash between claim
// and launch.json), and nothing of it can still run, since its home and processes went with its end.
//
// No /etc/subuid entry is needed: runc writes the id maps as host root.

// Defaults for the id ranges: the base is above useradd's SUB_UID_MAX (600100000), so no host user's
// /etc/subuid range overlaps, and the last of 16384 slots still ends below 2^31 (some tools treat uids
// as signed).
const (
	defaultIDBase  = 1_000_000_000
	defaultIDSlots = 16384
)

type idRegistry struct {
	dir   string
	base  uint32
	slots int
}

// hostID is the first host id of slot's range.
func (r idRegistry) hostID(slot int) uint32 { return r.base + uint32(slot)*ocispec.RangeSize }

// lock takes the registry's flock; the returned function releases it.
func (r idRegistry) lock() (func(), error) {
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(r.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil // closing the descriptor drops the lock
}

// claim gives owner (an absolute sandbox directory) the lowest free slot.
func (r idRegistry) claim(owner string) (int, error) {
	unlock, err := r.lock()
	if err != nil {
		return -1, fmt.Errorf("claim uid range: %w", err)
	}
	defer unlock()
	for n := range r.slots {
		p := filepath.Join(r.dir, strconv.Itoa(n))
		data, err := os.ReadFile(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return -1, fmt.Errorf("claim uid range: %w", err)
		case exists(string(data)):
			continue // held
		}
		// Free, or held by a sandbox directory that is gone: the rename in writeFileAtomic replaces either.
		if err := writeFileAtomic(p, []byte(owner)); err != nil {
			return -1, fmt.Errorf("claim uid range: %w", err)
		}
		return n, nil
	}
	return -1, fmt.Errorf("%w: all %d uid ranges are held by sandboxes on this host", backend.ErrUnavailable, r.slots)
}

// release frees slot if owner holds it; a slot taken over since (its owner was gone) stays with the new owner.
func (r idRegistry) release(slot int, owner string) error {
	if slot < 0 {
		return nil
	}
	unlock, err := r.lock()
	if err != nil {
		return fmt.Errorf("release uid range: %w", err)
	}
	defer unlock()
	p := filepath.Join(r.dir, strconv.Itoa(slot))
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) || (err == nil && strings.TrimSpace(string(data)) != owner) {
		return nil
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil {
		return fmt.Errorf("release uid range: %w", err)
	}
	return nil
}

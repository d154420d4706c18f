package image

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// BenchmarkPullUnpack measures the built-in images (infra/images/build.sh's output: $TAMARACK_IMAGES or
// /var/cache/tamarack-images/current) served by a registry store over loopback HTTP:
//
//	cold      nothing on the host: pull every layer, verify, unpack (the first sandbox of an image waits this)
//	layers    layers already cached: verify and unpack only (after a Prune of the unpacked root)
//	unpacked  the root is there: what every later sandbox of the image waits
//
// Report the median of three: go test ./testbed/image -run '^$' -bench PullUnpack -benchtime 1x -count 3
func BenchmarkPullUnpack(b *testing.B) {
	dir := cmp.Or(os.Getenv("TAMARACK_IMAGES"), "/var/cache/tamarack-images/current")
	list, err := ReadBuiltin(filepath.Join(dir, BuildListFile))
	if err != nil || len(list) == 0 {
		b.Skipf("no built-in images in %s (%v): build them with infra/images/build.sh", dir, err)
	}
	store, err := OpenRegistry(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := startStore(b, store)
	names := make([]string, 0, len(list))
	for n := range list {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		e := list[n]
		img, err := ReadLayout(filepath.Join(dir, e.Layout), e.Digest)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := store.Push(bg, e.Repository, "latest", img); err != nil {
			b.Fatal(err)
		}
		ref := srv + "/" + e.Repository + "@" + e.Digest
		pull := Pull{Policy: Policy{Allow: []string{srv + "/"}}}
		m, _ := img.Manifest()
		var compressed int64
		for _, l := range m.Layers {
			compressed += l.Size
		}
		b.Run(n+"/cold", func(b *testing.B) {
			b.SetBytes(compressed)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := newCache(b, Options{Dir: filepath.Join(b.TempDir(), fmt.Sprint(i))})
				syscall.Sync()
				b.StartTimer()
				if _, err := c.Rootfs(bg, ref, pull); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(n+"/layers", func(b *testing.B) {
			b.SetBytes(compressed)
			c := newCache(b, Options{})
			if _, err := c.Rootfs(bg, ref, pull); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := removeTree(filepath.Join(c.opts.Dir, rootsDir, e.Digest[len("sha256:"):])); err != nil {
					b.Fatal(err)
				}
				// Start with nothing pending: the removal's writeback (and discards, on this VM's ext4) would
				// otherwise be charged to the unpack.
				syscall.Sync()
				b.StartTimer()
				if _, err := c.Rootfs(bg, ref, pull); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(n+"/unpacked", func(b *testing.B) {
			c := newCache(b, Options{})
			if _, err := c.Rootfs(bg, ref, pull); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Rootfs(bg, ref, pull); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

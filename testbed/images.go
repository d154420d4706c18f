package testbed

import (
	"maps"
	"strings"

	"github.com/tamarack-ai/tamarack/platform/problem"
	"github.com/tamarack-ai/tamarack/testbed/image"
)

// imageSettingsPrefix marks the pool settings that say which images a pool runs (image.SettingAllow) and
// with which registry credentials (image.SettingAuthPrefix): programme staff keep them, not the vendor.
const imageSettingsPrefix = "images."

// checkImageSettings refuses a non-staff change to a pool's image settings, and image settings that do not
// parse (every bad entry at once).
func checkImageSettings(c Caller, before, after map[string]string) error {
	if !c.Staff && !maps.Equal(imageSettings(before), imageSettings(after)) {
		return ErrImageSettingsStaff
	}
	if _, _, err := image.FromSettings(after); err != nil {
		var f problem.Fields
		f.Add("settings", "invalid", err.Error())
		return f.Err()
	}
	return nil
}

func imageSettings(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, imageSettingsPrefix) {
			out[k] = v
		}
	}
	return out
}

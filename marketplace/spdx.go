package marketplace

import "strings"

// spdxIDs are the SPDX licence identifiers a listing may name (the common ones for models, datasets and code;
// anything else is "custom" with a link). Matching is case-insensitive; the canonical spelling is stored.
var spdxIDs = func() map[string]string {
	ids := []string{
		"0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0", "APSL-2.0",
		"Artistic-2.0", "BlueOak-1.0.0", "BSD-1-Clause", "BSD-2-Clause", "BSD-2-Clause-Patent", "BSD-3-Clause",
		"BSD-3-Clause-Clear", "BSD-4-Clause", "BSL-1.0", "CAL-1.0", "CC-BY-1.0", "CC-BY-2.0", "CC-BY-2.5",
		"CC-BY-3.0", "CC-BY-4.0", "CC-BY-NC-2.0", "CC-BY-NC-3.0", "CC-BY-NC-4.0", "CC-BY-NC-ND-3.0",
		"CC-BY-NC-ND-4.0", "CC-BY-NC-SA-2.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-4.0", "CC-BY-ND-3.0",
		"CC-BY-ND-4.0", "CC-BY-SA-2.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-PDDC", "CC0-1.0", "CDDL-1.0",
		"CDDL-1.1", "CDLA-Permissive-1.0", "CDLA-Permissive-2.0", "CDLA-Sharing-1.0", "CECILL-2.1", "CPL-1.0",
		"ECL-2.0", "EFL-2.0", "EPL-1.0", "EPL-2.0", "EUPL-1.1", "EUPL-1.2", "GFDL-1.3-only",
		"GFDL-1.3-or-later", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC",
		"LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "LPPL-1.3c", "MIT",
		"MIT-0", "MPL-1.1", "MPL-2.0", "MS-PL", "MS-RL", "MulanPSL-2.0", "NCSA", "ODbL-1.0", "ODC-By-1.0",
		"OFL-1.1", "OGL-Canada-2.0", "OGL-UK-3.0", "OpenRAIL", "OPL-1.0", "OSL-3.0", "PDDL-1.0",
		"PostgreSQL", "PSF-2.0", "Python-2.0", "Unicode-3.0", "Unlicense", "UPL-1.0", "W3C", "WTFPL", "X11",
		"Zlib", "ZPL-2.1",
	}
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		m[strings.ToLower(id)] = id
	}
	return m
}()

// spdxExceptions are the licence exceptions allowed after WITH.
var spdxExceptions = map[string]string{
	"classpath-exception-2.0": "Classpath-exception-2.0", "llvm-exception": "LLVM-exception",
	"gcc-exception-3.1": "GCC-exception-3.1", "autoconf-exception-3.0": "Autoconf-exception-3.0",
}

// CanonicalSPDX checks a simple SPDX licence expression (identifiers joined by AND/OR, optionally "X WITH
// exception") against the known list and returns it in canonical spelling; ok is false for anything else.
func CanonicalSPDX(expr string) (string, bool) {
	words := strings.Fields(expr)
	if len(words) == 0 || len(words) > 15 {
		return "", false
	}
	out := make([]string, 0, len(words))
	expectID := true
	for i := 0; i < len(words); i++ {
		w := words[i]
		if expectID {
			id, ok := spdxIDs[strings.ToLower(strings.TrimSuffix(w, "+"))]
			if !ok {
				return "", false
			}
			out = append(out, id)
			expectID = false
			continue
		}
		switch strings.ToUpper(w) {
		case "AND", "OR":
			out = append(out, strings.ToUpper(w))
			expectID = true
		case "WITH":
			if i+1 >= len(words) {
				return "", false
			}
			ex, ok := spdxExceptions[strings.ToLower(words[i+1])]
			if !ok {
				return "", false
			}
			out = append(out, "WITH", ex)
			i++
		default:
			return "", false
		}
	}
	if expectID {
		return "", false
	}
	return strings.Join(out, " "), true
}

// GPUModels are the accelerator models the programme knows; compute listings must name one of them.
var GPUModels = []string{
	"h100-80gb", "h200-141gb", "a100-80gb", "a100-40gb", "l40s-48gb", "l4-24gb", "rtx6000ada-48gb", "mi300x-192gb",
}

// gpuVRAM is each model's memory in GB, the default VRAM of a compute listing.
var gpuVRAM = map[string]int{
	"h100-80gb": 80, "h200-141gb": 141, "a100-80gb": 80, "a100-40gb": 40, "l40s-48gb": 48, "l4-24gb": 24,
	"rtx6000ada-48gb": 48, "mi300x-192gb": 192,
}

// KnownGPUModel reports whether m is in GPUModels.
func KnownGPUModel(m string) bool { _, ok := gpuVRAM[m]; return ok }

package agent

import (
	"path"
	"slices"
	"strings"
)

// ModuleNames returns the module names of kernel module files (paths
// under lib/modules/<version>/, compressed or not), sorted, each once:
// what modprobe takes. Dashes become underscores, as the kernel names
// modules.
func ModuleNames(files []string) []string {
	var out []string
	for _, f := range files {
		base := path.Base(f)
		for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
			if name, ok := strings.CutSuffix(base, ext); ok && name != "" {
				out = append(out, strings.ReplaceAll(name, "-", "_"))
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

package testenv

import (
	"os"
	"strings"
	"testing"
)

func TestDebianKernel(t *testing.T) {
	k := DebianKernel(t)
	if !strings.HasSuffix(k.Version, "-amd64") {
		t.Errorf("version %q", k.Version)
	}
	for _, p := range []string{k.Vmlinuz, k.Modules + "/modules.dep"} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	// A second call reuses the cache.
	if again := DebianKernel(t); again != k {
		t.Errorf("second call: %+v, first %+v", again, k)
	}
}

package frontend

import (
	"io/fs"
	"testing"
)

func TestStaticHoldsOurOwnAssets(t *testing.T) {
	for _, name := range []string{"herd.css", "herd.js", "favicon.svg"} {
		if _, err := fs.Stat(Static(), name); err != nil {
			t.Errorf("static asset %s: %v", name, err)
		}
	}
}

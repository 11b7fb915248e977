//go:build !unix

package embedded

import (
	"fmt"
	"os"
)

// lockDir creates path; without flock, two processes sharing a state
// directory are not detected here.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}

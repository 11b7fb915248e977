package kernel

import "testing"

// FuzzFind feeds link targets and versions from the fuzzer: Find must not
// panic or loop, and CompareVersions must be antisymmetric.
func FuzzFind(f *testing.F) {
	f.Add("../usr/lib/modules/6.1/vmlinuz", "usr/lib", "6.1.0-28-amd64", "6.1.0-9-amd64")
	f.Add("/../../boot/vmlinuz-1", "/", "6..1", "6.1")
	f.Add("vmlinuz-x", "../..", "", "0")
	f.Fuzz(func(t *testing.T, kernelLink, libLink, a, b string) {
		if c, d := CompareVersions(a, b), CompareVersions(b, a); c != -d {
			t.Errorf("CompareVersions(%q, %q) = %d, reversed %d", a, b, c, d)
		}
		if kernelLink == "" || libLink == "" {
			return
		}
		m := tree("lib -> "+libLink, "boot/vmlinuz-x -> "+kernelLink, "usr/lib/modules/6.1/vmlinuz", "boot/vmlinuz-y")
		if m.Validate() != nil {
			return
		}
		for _, k := range Find(m) {
			if k.File == "" || k.Version == "" {
				t.Errorf("kernel %+v", k)
			}
		}
	})
}

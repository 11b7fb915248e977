package model

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseDiskSize(t *testing.T) {
	for _, tc := range []struct {
		in    string
		size  Bytes
		tol   float64
		fits  []uint64
		wrong []uint64
	}{
		{"120GB ± 5%", 120e9, 5, []uint64{114e9, 126e9}, []uint64{113e9, 127e9}},
		{"120GB+-5%", 120e9, 5, []uint64{120e9}, nil},
		{"1.92TB", 1.92e12, 0, []uint64{1.92e12}, []uint64{1.92e12 + 1}},
		{"512GiB ±10 %", 512 << 30, 10, []uint64{512 << 30}, nil},
	} {
		d, err := ParseDiskSize(tc.in)
		if err != nil || d.Size != tc.size || d.Tolerance != tc.tol {
			t.Errorf("%q: %+v, %v", tc.in, d, err)
			continue
		}
		for _, n := range tc.fits {
			if !d.Contains(n) {
				t.Errorf("%q does not contain %d", tc.in, n)
			}
		}
		for _, n := range tc.wrong {
			if d.Contains(n) {
				t.Errorf("%q contains %d", tc.in, n)
			}
		}
	}
	for _, bad := range []string{"", "GB", "-5GB", "120GB ± x%", "120GB ± 5", "0GB", "120XB", "1e3GB"} {
		if _, err := ParseDiskSize(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if s := (DiskSize{Size: 960e9, Tolerance: 5}).String(); s != "960GB ± 5%" {
		t.Errorf("String = %q", s)
	}
}

func TestLayoutJSONAndExpand(t *testing.T) {
	in := `{"name":"compute","mode":"simple","disks":[
		{"name":"disk0","select":{"type":"nvme","size":"960GB ± 5%"}},
		{"name":"disk1","select":{"type":"nvme","size":"960GB ± 5%"}}],
		"simple":{"mirror":true,"filesystems":[
			{"mount":"/","type":"ext4","size":"rest"},
			{"mount":"/var/log","type":"xfs","size":"20GiB"},
			{"type":"swap","size":"8GiB"}]}}`
	var l Layout
	if err := json.Unmarshal([]byte(in), &l); err != nil {
		t.Fatal(err)
	}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	a := l.Expand()
	b, _ := json.Marshal(a)
	got := string(b)
	for _, want := range []string{
		`{"disk":"disk0","number":2,"type":"raid","size":"rest"}`,
		`"arrays":[{"name":"md0","level":1,"devices":["disk0p2","disk1p2"]}]`,
		`"volume_groups":[{"name":"system","devices":["md0"]}]`,
		`"logical_volumes":[{"vg":"system","name":"var_log","size":"21474836480"},{"vg":"system","name":"swap","size":"8589934592"},{"vg":"system","name":"root","size":"rest"}]`,
		`{"device":"disk0p1","type":"vfat","mount":"/boot/efi","label":"ESP0"}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("expansion lacks %s:\n%s", want, got)
		}
	}
	if b2, _ := json.Marshal(l.Expand()); string(b2) != got {
		t.Error("expansion is not deterministic")
	}
	adv := Layout{Name: "adv", Mode: LayoutAdvanced, Disks: l.Disks, Advanced: a}
	if err := adv.Validate(); err != nil {
		t.Errorf("the expansion is not a valid advanced layout: %v", err)
	}

	// On BIOS the boot partition is for SYSLINUX: vfat at /boot/herd,
	// flagged legacy_boot.
	l.Simple.Firmware = FirmwareBIOS
	b, _ = json.Marshal(l.Expand())
	for _, want := range []string{
		`{"disk":"disk0","number":1,"type":"xbootldr","size":"536870912","flags":["legacy_boot"]}`,
		`{"device":"disk0p1","type":"vfat","mount":"/boot/herd","label":"HERDBOOT0"}`,
		`{"device":"disk1p1","type":"vfat","label":"HERDBOOT1"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("BIOS expansion lacks %s:\n%s", want, b)
		}
	}
	l.Simple.Filesystems = append(l.Simple.Filesystems, SimpleFS{Mount: "/boot/herd", Type: FSExt4, Size: PartSize{Size: 1 << 30}})
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), "made by the layout itself") {
		t.Errorf("a BIOS layout mounting /boot/herd itself: %v", err)
	}
}

func TestLayoutValidate(t *testing.T) {
	bad := Layout{Name: "bad", Mode: LayoutAdvanced, Disks: []LayoutDisk{{Name: "disk1", Select: DiskSelector{Type: "tape"}}},
		Advanced: &AdvancedLayout{
			Partitions: []Partition{
				{Disk: "disk0", Number: 1, Type: "esp", Size: PartSize{Rest: true}},
				{Disk: "disk0", Number: 3, Type: "nonsense", Size: PartSize{Size: 1 << 30}},
			},
			Arrays:      []Array{{Name: "md0", Level: 4, Devices: []string{"disk0p1"}}},
			Filesystems: []Filesystem{{Device: "disk0p1", Type: "ntfs", Mount: "/"}, {Device: "md0", Type: FSSwap, Mount: "/swap"}},
		}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`disks[0].name: "disk1"`, `disks[0].select.type: "tape"`, `partitions[1].size: partition disk0p3 follows one that takes the rest`,
		`partitions[1].number`, `partitions[1].type: "nonsense"`, `arrays[0].level`, `filesystems[0].device: "disk0p1" is already used`,
		`filesystems[0].type: "ntfs"`, `filesystems[1].mount: swap has no mount point`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

// FuzzLayoutJSON feeds any JSON to the layout parser: no panic; a layout
// that validates reads back the same after a JSON round trip (sizes
// included), and its expansion is a valid advanced layout.
func FuzzLayoutJSON(f *testing.F) {
	f.Add(`{"name":"m","mode":"simple","disks":[{"name":"disk0","select":{"type":"nvme","size":"960GB ± 5%"}},{"name":"disk1","select":{"size":"1234567890"}}],` +
		`"simple":{"mirror":true,"firmware":"bios","filesystems":[{"mount":"/","type":"ext4","size":"rest"},{"mount":"/var","type":"xfs","size":"1.5TiB"},{"type":"swap","size":"8GiB"}]}}`)
	f.Add(`{"name":"a","mode":"advanced","disks":[{"name":"disk0","select":{"serial":"S3X"}}],"advanced":{` +
		`"partitions":[{"disk":"disk0","number":1,"type":"esp","size":"512MiB","flags":["legacy_boot"]},{"disk":"disk0","number":2,"type":"raid","size":"rest"}],` +
		`"arrays":[{"name":"md0","level":1,"devices":["disk0p2"]}],"volume_groups":[{"name":"vg","devices":["md0"]}],` +
		`"logical_volumes":[{"vg":"vg","name":"root","size":"rest"}],` +
		`"filesystems":[{"device":"disk0p1","type":"vfat","mount":"/boot/efi"},{"device":"vg/root","type":"ext4","mount":"/","options":["noatime"]}]}}`)
	f.Fuzz(func(t *testing.T, s string) {
		var l Layout
		if json.Unmarshal([]byte(s), &l) != nil || l.Validate() != nil {
			return
		}
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var back Layout
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s does not read back: %v", b, err)
		}
		if b2, _ := json.Marshal(back); string(b2) != string(b) {
			t.Fatalf("round trip changed the layout:\n%s\n%s", b, b2)
		}
		// Disk sizes print short where they can: the exact size must
		// still come back.
		for i, d := range l.Disks {
			if (d.Select.Size == nil) != (back.Disks[i].Select.Size == nil) || d.Select.Size != nil && *d.Select.Size != *back.Disks[i].Select.Size {
				t.Fatalf("disk %s's size %v reads back as %v", d.Name, d.Select.Size, back.Disks[i].Select.Size)
			}
		}
		adv := Layout{Name: "expanded", Mode: LayoutAdvanced, Disks: l.Disks, Advanced: l.Expand()}
		if err := adv.Validate(); err != nil {
			t.Fatalf("%s expands to an invalid advanced layout: %v", s, err)
		}
	})
}

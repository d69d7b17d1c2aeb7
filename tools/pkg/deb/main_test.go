package main

import (
	"os/exec"
	"testing"
)

func TestDebianVersion(t *testing.T) {
	for _, c := range []struct {
		describe string
		commits  int
		want     string
	}{
		{"v1.2.3", 0, "1.2.3"},
		{"1.2.3", 0, "1.2.3"},
		{"v1.2.3-rc1", 0, "1.2.3~rc1"},
		{"v1.2.3-4-gabc1234", 0, "1.2.3+4.gabc1234"},
		{"v1.2.3-rc1-4-gabc1234", 0, "1.2.3~rc1+4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", 0, "1.2.3+4.gabc1234.dirty"},
		{"v1.2.3-dirty", 0, "1.2.3+dirty"},
		{"b0c1d29", 285, "0.0.0+git285.gb0c1d29"},
		{"b0c1d29-dirty", 285, "0.0.0+git285.gb0c1d29.dirty"},
	} {
		got, err := DebianVersion(c.describe, c.commits)
		if err != nil || got != c.want {
			t.Errorf("DebianVersion(%q, %d) = %q, %v; want %q", c.describe, c.commits, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "dev", "b0c1d29", "v1.2.3 x", "-1"} {
		if got, err := DebianVersion(bad, 0); err == nil {
			t.Errorf("DebianVersion(%q, 0) = %q, want an error", bad, got)
		}
	}
}

// TestDebianVersionOrder checks with dpkg's own comparison that later
// builds sort after earlier ones, so that dpkg -i of the newer is an
// upgrade.
func TestDebianVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg is missing (a Debian machine has it)")
	}
	order := [][2]any{
		{"abc1234", 10}, {"def5678", 11}, {"v0.1.0-rc1", 0}, {"v0.1.0", 0},
		{"v0.1.0-1-gabc1234", 0}, {"v0.1.0-2-gdef5678", 0}, {"v0.1.1", 0},
	}
	prev := ""
	for _, o := range order {
		v, err := DebianVersion(o[0].(string), o[1].(int))
		if err != nil {
			t.Fatal(err)
		}
		if prev != "" {
			if err := exec.Command("dpkg", "--compare-versions", prev, "lt", v).Run(); err != nil {
				t.Errorf("dpkg does not sort %s before %s", prev, v)
			}
		}
		prev = v
	}
}

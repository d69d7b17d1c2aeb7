// Command deb builds Vigil's Debian package, dist/vigil_<version>_amd64.deb,
// with nFPM used as a library (make deb).
//
// The package holds the binary as /usr/bin/vigil, the hardened unit
// (images/vigil.service) as /lib/systemd/system/vigil.service, the default
// configuration (images/deb/vigil.yaml) as the conffile
// /etc/vigil/vigil.yaml, which an upgrade does not overwrite once the
// administrator changed it, and docs/install.md. Its maintainer scripts
// (images/deb/postinst, prerm and postrm) make the user vigil and the data
// directory /var/lib/vigil, and keep both when the package is removed or
// purged. docs/install.md, "Debian package", is how IT uses it;
// tools/pkgtest installs it in a Debian userland and checks it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	var (
		binary  = flag.String("vigil", "bin/vigil", "the vigil binary to package (linux/amd64)")
		version = flag.String("version", "", "the binary's version, as `git describe --tags --always --dirty` prints it (required)")
		commits = flag.Int("commits", 0, "how many commits the version's HEAD has (git rev-list --count HEAD): orders untagged builds")
		root    = flag.String("root", ".", "the repository's root, where images/ and docs/ are")
		out     = flag.String("out", "dist", "the directory to write the package in")
		name    = flag.Bool("name", false, "print the package's path and build nothing")
	)
	flag.Parse()
	if *version == "" {
		fmt.Fprintln(os.Stderr, "deb: -version is required")
		os.Exit(2)
	}
	path, err := build(*binary, *version, *commits, *root, *out, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "deb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// build writes the package in out and returns its path; with nameOnly,
// it only returns the path.
func build(binary, version string, commits int, root, out string, nameOnly bool) (string, error) {
	debVersion, err := DebianVersion(version, commits)
	if err != nil {
		return "", err
	}
	if nameOnly {
		info := nfpm.WithDefaults(Info(binary, debVersion, root))
		return filepath.Join(out, deb.Default.ConventionalFileName(info)), nil
	}
	if _, err := os.Stat(binary); err != nil {
		return "", fmt.Errorf("no binary to package (make build): %w", err)
	}
	info := Info(binary, debVersion, root)
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", fmt.Errorf("cannot prepare the package: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(out, deb.Default.ConventionalFileName(info))
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("cannot build the package: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// Info is the package's description: its files, its scripts and its
// control fields.
func Info(binary, debVersion, root string) *nfpm.Info {
	img := func(name string) string { return filepath.Join(root, "images", name) }
	return &nfpm.Info{
		Name:          "vigil",
		Arch:          "amd64",
		Platform:      "linux",
		Version:       debVersion,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    "Vigil <vigil@vigilarc.invalid>",
		Vendor:        "Vigil",
		Homepage:      "https://github.com/vigilarc/vigil",
		Description: "lone-worker alarm receiving appliance\n" +
			"Vigil receives alarms and timed sessions from lone workers' devices over\n" +
			"MQTT and presents them to operators; three appliances form one cluster\n" +
			"that keeps working when any one of them fails.",
		// The binary's build time would make each build differ; the
		// package is the same for the same files.
		MTime: time.Unix(0, 0).UTC(),
		Overridables: nfpm.Overridables{
			// adduser makes the system user in postinst.
			Depends: []string{"adduser"},
			Contents: files.Contents{
				{Source: binary, Destination: "/usr/bin/vigil",
					FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: img("vigil.service"), Destination: "/lib/systemd/system/vigil.service",
					FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Source: img("deb/vigil.yaml"), Destination: "/etc/vigil/vigil.yaml",
					Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o640}},
				{Source: filepath.Join(root, "docs", "install.md"), Destination: "/usr/share/doc/vigil/install.md",
					FileInfo: &files.ContentFileInfo{Mode: 0o644}},
			},
			Scripts: nfpm.Scripts{
				PostInstall: img("deb/postinst"),
				PreRemove:   img("deb/prerm"),
				PostRemove:  img("deb/postrm"),
			},
		},
	}
}

// A version as git describe prints it: a tag (v1.2.3, or 1.2.3-rc1), how
// many commits since it and the commit, and whether the tree was dirty;
// or, with no tag, the commit alone.
var (
	describeTag    = regexp.MustCompile(`^v?([0-9][0-9A-Za-z.]*)(?:-((?:rc|alpha|beta)[0-9A-Za-z.]*))?(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	describeCommit = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
)

// DebianVersion turns the binary's version (git describe --tags --always
// --dirty) into a Debian version that sorts the way the builds were made,
// so that dpkg -i of a newer build is an upgrade:
//
//	v1.2.3                 1.2.3
//	v1.2.3-rc1             1.2.3~rc1          (before 1.2.3)
//	v1.2.3-4-gabc1234      1.2.3+4.gabc1234   (after 1.2.3)
//	abc1234 (no tag yet)   0.0.0+git<commits>.gabc1234
//	...-dirty              ... .dirty
//
// An untagged build needs commits, the count of commits of its HEAD.
func DebianVersion(describe string, commits int) (string, error) {
	describe = strings.TrimSpace(describe)
	if m := describeTag.FindStringSubmatch(describe); m != nil && !describeCommit.MatchString(describe) {
		v := m[1]
		if m[2] != "" {
			v += "~" + m[2]
		}
		var extra []string
		if m[3] != "" {
			extra = append(extra, m[3], "g"+m[4])
		}
		if m[5] != "" {
			extra = append(extra, "dirty")
		}
		if len(extra) > 0 {
			v += "+" + strings.Join(extra, ".")
		}
		return v, nil
	}
	if m := describeCommit.FindStringSubmatch(describe); m != nil {
		if commits <= 0 {
			return "", fmt.Errorf("version %q has no tag: give -commits (git rev-list --count HEAD) to order it", describe)
		}
		v := fmt.Sprintf("0.0.0+git%d.g%s", commits, m[1])
		if m[2] != "" {
			v += ".dirty"
		}
		return v, nil
	}
	return "", fmt.Errorf("version %q is not what git describe --tags --always --dirty prints", describe)
}

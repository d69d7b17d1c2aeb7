// Package pkgtest checks Vigil's Debian package (tools/pkg/deb) the way IT
// uses it, in a real Debian userland: make deb-test builds the package,
// and TestDebianPackage installs it with dpkg in a Debian bookworm made
// with debootstrap (minbase, with adduser and systemd), in a chroot, then
// checks the user, the data directory, the unit (systemd-analyze verify),
// a node running as the package's user with the package's configuration,
// an upgrade that keeps the administrator's configuration, and removal and
// purge that keep the data.
//
// The userland is made once and kept in a cache directory
// ($VIGIL_DEB_ROOTFS_CACHE, default /var/cache/vigil-test/bookworm): the
// first run downloads it from the apt mirror this machine uses (about a
// minute), later runs copy it. The test needs root and debootstrap, and is
// skipped with go test -short and when $VIGIL_DEB does not name the
// package (make deb-test sets it).
package pkgtest

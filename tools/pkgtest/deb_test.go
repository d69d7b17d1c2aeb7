package pkgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The package's paths and user (images/vigil.service, images/deb).
const (
	user     = "vigil"
	binPath  = "/usr/bin/vigil"
	unitPath = "/lib/systemd/system/vigil.service"
	confPath = "/etc/vigil/vigil.yaml"
	dataDir  = "/var/lib/vigil"
	// wantsLink is the unit's enablement, made by postinst on a new
	// install.
	wantsLink = "/etc/systemd/system/multi-user.target.wants/vigil.service"
	// conditionFile is what the unit waits for before it starts the node:
	// the appliance's certificate, made by vigil init or vigil join.
	conditionFile = dataDir + "/tls/node.crt"
)

const (
	// suite is the Debian release the package is checked on.
	suite = "bookworm"
	// defaultCache is where the userland is kept between runs.
	defaultCache = "/var/cache/vigil-test/" + suite
	// startTimeout bounds a node's start, to its HTTP API answering.
	startTimeout = 30 * time.Second
	// stopTimeout bounds a clean stop after SIGTERM (the unit gives 60 s).
	stopTimeout = 30 * time.Second
)

// TestDebianPackage installs the package in a Debian userland and checks
// what IT relies on: the user and the data directory postinst makes, the
// conffile, the unit (systemd-analyze verify, its start condition), a node
// started as the package's user with the packaged configuration (edited
// as the administrator would) that answers on its HTTP address and stops
// cleanly, a reinstall that keeps the edited configuration, dpkg -r that
// keeps the configuration, the data and the user, and dpkg -P that removes
// the configuration and still keeps the data and the user.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("installs the Debian package in a debootstrap userland: skipped with -short")
	}
	deb := os.Getenv("VIGIL_DEB")
	if deb == "" {
		t.Skip("VIGIL_DEB names no package: run make deb-test, which builds it (make deb) and sets it")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, dpkg in the userland): run make deb-test as root")
	}
	deb, err := filepath.Abs(deb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("VIGIL_DEB: %v (make deb builds it)", err)
	}
	for _, tool := range []string{"chroot", "cp", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: install it (coreutils, mount)", tool)
		}
	}

	r := newRootfs(t)
	if err := copyFile(deb, r.path("/tmp/vigil.deb")); err != nil {
		t.Fatal(err)
	}

	// Install.
	r.must("dpkg", "-i", "/tmp/vigil.deb")
	status := r.must("dpkg-query", "-W", "-f", "${Status} ${Conffiles}", "vigil")
	if !strings.HasPrefix(status, "install ok installed") {
		t.Fatalf("dpkg-query: vigil is %q, want installed", status)
	}
	if !strings.Contains(status, confPath+" ") {
		t.Errorf("dpkg-query: conffiles %q do not name %s", status, confPath)
	}

	// The user: a system user with no login shell, its home the data
	// directory, in its own group.
	pw := strings.Split(strings.TrimSpace(r.must("getent", "passwd", user)), ":")
	if len(pw) != 7 {
		t.Fatalf("getent passwd %s: %q", user, pw)
	}
	uid, _ := strconv.Atoi(pw[2])
	gid, _ := strconv.Atoi(pw[3])
	if uid == 0 || uid >= 1000 {
		t.Errorf("user %s has uid %d, want a system user (1 to 999)", user, uid)
	}
	if shell := pw[6]; shell != "/usr/sbin/nologin" && shell != "/bin/false" {
		t.Errorf("user %s has the shell %s, want no login shell", user, shell)
	}
	if pw[5] != dataDir {
		t.Errorf("user %s has the home %s, want %s", user, pw[5], dataDir)
	}
	gr := strings.Split(strings.TrimSpace(r.must("getent", "group", user)), ":")
	if len(gr) < 3 || gr[2] != strconv.Itoa(gid) {
		t.Errorf("group %s is %q, want the user's primary group %d", user, gr, gid)
	}

	// The data directory is the user's alone; the configuration is
	// readable by the user's group, not by others (it may hold a join
	// token).
	r.wantOwner(dataDir, uid, gid, fs.ModeDir|0o700)
	r.wantOwner(filepath.Dir(confPath), 0, gid, fs.ModeDir|0o750)
	r.wantOwner(confPath, 0, gid, 0o640)
	r.wantOwner(binPath, 0, 0, 0o755)
	r.wantOwner(unitPath, 0, 0, 0o644)
	if _, err := os.Lstat(r.path(wantsLink)); err != nil {
		t.Errorf("the unit is not enabled on a new install: %v", err)
	}

	// The unit, as systemd reads it: any complaint fails (verify warns of
	// an unparsable setting with no error status).
	if out, err := r.run("systemd-analyze", "verify", unitPath); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	// It does not start a node that is not set up.
	if out, err := r.run("systemd-analyze", "condition", "--unit=vigil.service"); err == nil {
		t.Errorf("the unit's conditions hold before the appliance is set up:\n%s", out)
	}

	// The administrator sets the appliance's addresses in the conffile
	// (free ports here: the chroot shares this machine's network) and sets
	// it up as the package's user.
	httpAddr, clusterAddr := freeAddr(t), freeAddr(t)
	conf, err := os.ReadFile(r.path(confPath))
	if err != nil {
		t.Fatal(err)
	}
	edited := string(conf)
	for old, addr := range map[string]string{"http_addr: 127.0.0.1:8080": "http_addr: " + httpAddr,
		"bind_addr: 127.0.0.1:7000": "bind_addr: " + clusterAddr} {
		if !strings.Contains(edited, old) {
			t.Fatalf("the packaged %s has no line %q:\n%s", confPath, old, conf)
		}
		edited = strings.Replace(edited, old, addr, 1)
	}
	edited += "# edited by the administrator\n"
	if err := os.WriteFile(r.path(confPath), []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	r.must(asUser("vigil", "init", "--config", confPath, "--expect", "1")...)
	if out, err := r.run("systemd-analyze", "condition", "--unit=vigil.service"); err != nil {
		t.Errorf("the unit's conditions fail once the appliance is set up: %v\n%s", err, out)
	}

	// The node, started as the unit does it: as the user, with the
	// packaged configuration and no VIGIL_ variable.
	serve(t, r, uid, httpAddr)

	// Everything the node made is in the data directory the configuration
	// names, and the user's.
	files := 0
	err = filepath.WalkDir(r.path(dataDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if s := st.Sys().(*syscall.Stat_t); int(s.Uid) != uid {
			t.Errorf("%s is owned by uid %d, want %s's (%d)", strings.TrimPrefix(p, r.dir), s.Uid, user, uid)
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Errorf("%s holds %d entries after a run: the node did not use it", dataDir, files)
	}

	// Upgrade (the same package again): the edited configuration stays.
	r.must("dpkg", "-i", "/tmp/vigil.deb")
	r.wantFile(confPath, edited)
	r.wantOwner(confPath, 0, gid, 0o640)

	// Remove: the program and the unit go; the configuration, the data and
	// the user stay.
	r.must("dpkg", "-r", "vigil")
	r.wantGone(binPath)
	r.wantGone(unitPath)
	r.wantGone("/usr/share/doc/vigil")
	r.wantFile(confPath, edited)
	r.wantData()
	r.must("getent", "passwd", user)

	// Purge: the configuration goes, with its directory and the unit's
	// enablement; the data and the user stay.
	r.must("dpkg", "-P", "vigil")
	r.wantGone(confPath)
	r.wantGone(filepath.Dir(confPath))
	r.wantGone(wantsLink)
	r.wantData()
	r.must("getent", "passwd", user)
	if out, _ := r.run("dpkg-query", "-W", "-f", "${Status}", "vigil"); strings.Contains(out, "installed") && !strings.Contains(out, "not-installed") {
		t.Errorf("dpkg-query after purge: %q", out)
	}
}

// serve starts the node as the unit would, waits for its HTTP API to
// answer, checks that it runs as uid and that vigil status, as the user,
// reaches it with the setup token from the configured data directory,
// then stops it with SIGTERM and wants a clean exit.
func serve(t *testing.T, r *rootfs, uid int, httpAddr string) {
	t.Helper()
	var log strings.Builder
	// chroot and setpriv exec the next program: the process is the node.
	cmd := exec.Command("chroot", append([]string{r.dir}, asUser("vigil", "serve", "--config", confPath)...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("the node's log:\n%s", log.String())
		}
	}()

	url := "http://" + httpAddr + "/api/v1/cluster/status"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			// No token: the API answers, and refuses.
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %s, want 401", url, resp.Status)
			}
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the node exited before its HTTP API answered on %s: %v", httpAddr, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node's HTTP API did not answer on %s within %v: %v", httpAddr, startTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	pid := cmd.Process.Pid
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != r.path(binPath) {
		t.Errorf("process %d runs %q (%v), want %s", pid, exe, err, r.path(binPath))
	}
	if ids := procIDs(t, pid, "Uid:"); len(ids) != 4 || ids[0] != uid || ids[1] != uid || ids[2] != uid {
		t.Errorf("the node runs with the uids %v, want %s's (%d)", ids, user, uid)
	}

	// A one-node cluster elects itself within a second or two.
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(200 * time.Millisecond) {
		out := r.must(asUser("vigil", "status", "--config", confPath, "--addr", "http://"+httpAddr)...)
		if strings.Contains(out, "(Leader)") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("vigil status as %s: no leader within %v:\n%s", user, startTimeout, out)
			break
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("the node's exit after SIGTERM: %v, want a clean one", err)
		}
	case <-time.After(stopTimeout):
		t.Errorf("the node did not stop within %v of SIGTERM", stopTimeout)
	}
}

// asUser is the command line that runs vigil with args as the user name, with its
// groups, as the unit's User= and Group= do.
func asUser(name string, args ...string) []string {
	return append([]string{"setpriv", "--reuid=" + name, "--regid=" + name, "--init-groups", "--", binPath}, args...)
}

// procIDs reads the ids of the line key (Uid: or Gid:) of the process's
// status.
func procIDs(t *testing.T, pid int, key string) []int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			var ids []int
			for _, s := range strings.Fields(rest) {
				n, _ := strconv.Atoi(s)
				ids = append(ids, n)
			}
			return ids
		}
	}
	t.Fatalf("no %s line in /proc/%d/status", key, pid)
	return nil
}

// freeAddr is a loopback address with a port that nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rootfs is a Debian userland for one test, a copy of the cached one.
type rootfs struct {
	t   *testing.T
	dir string
}

// newRootfs copies the cached userland (making it first when it is
// missing) into a temporary directory with /proc mounted.
func newRootfs(t *testing.T) *rootfs {
	t.Helper()
	cache := os.Getenv("VIGIL_DEB_ROOTFS_CACHE")
	if cache == "" {
		cache = defaultCache
	}
	if _, err := os.Stat(filepath.Join(cache, ".complete")); err != nil {
		bootstrap(t, cache)
	}
	dir := filepath.Join(t.TempDir(), "root")
	start := time.Now()
	if out, err := exec.Command("cp", "-a", cache, dir).CombinedOutput(); err != nil {
		t.Fatalf("cannot copy the userland %s: %v\n%s", cache, err, out)
	}
	t.Logf("copied the userland %s in %v", cache, time.Since(start).Round(time.Millisecond))
	if out, err := exec.Command("mount", "-t", "proc", "proc", filepath.Join(dir, "proc")).CombinedOutput(); err != nil {
		t.Fatalf("cannot mount /proc in the userland: %v\n%s", err, out)
	}
	// Cleanups run last first: this before the directory's removal.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", filepath.Join(dir, "proc")).CombinedOutput(); err != nil {
			t.Errorf("umount %s/proc: %v\n%s", dir, err, out)
		}
	})
	return &rootfs{t: t, dir: dir}
}

// bootstrap makes the userland in cache with debootstrap from this
// machine's apt mirror.
func bootstrap(t *testing.T, cache string) {
	t.Helper()
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap is missing: apt-get install debootstrap (make deb-test installs it)")
	}
	mirror := os.Getenv("VIGIL_DEB_MIRROR")
	if mirror == "" {
		var err error
		if mirror, err = aptMirror(); err != nil {
			t.Fatalf("%v: set VIGIL_DEB_MIRROR to a Debian mirror", err)
		}
	}
	tmp := cache + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(cache), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("making a Debian %s userland in %s from %s (once; later runs reuse it)", suite, cache, mirror)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include=adduser,systemd",
		suite, tmp, mirror).CombinedOutput()
	if err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, tail(string(out), 30))
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cache); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, cache); err != nil {
		t.Fatal(err)
	}
	t.Logf("made the userland in %v", time.Since(start).Round(time.Second))
}

// aptMirror is the first Debian archive (not the security one) that apt
// uses on this machine, from /etc/apt/sources.list and sources.list.d, in
// either format.
func aptMirror() (string, error) {
	paths := []string{"/etc/apt/sources.list"}
	for _, pattern := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pattern)
		paths = append(paths, m...)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			var uris []string
			switch {
			case len(f) >= 3 && f[0] == "deb":
				// deb [options] uri suite components
				for _, s := range f[1:] {
					if strings.Contains(s, "://") {
						uris = append(uris, s)
						break
					}
				}
			case len(f) >= 2 && f[0] == "URIs:":
				uris = f[1:]
			}
			for _, u := range uris {
				if !strings.Contains(u, "security") && strings.HasPrefix(u, "http") {
					return u, nil
				}
			}
		}
	}
	return "", errors.New("no Debian mirror in /etc/apt/sources.list or sources.list.d")
}

// path is p inside the userland, seen from outside.
func (r *rootfs) path(p string) string { return filepath.Join(r.dir, p) }

// run runs args in the userland and returns its output.
func (r *rootfs) run(args ...string) (string, error) {
	cmd := exec.Command("chroot", append([]string{r.dir}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs args in the userland and fails the test if it fails.
func (r *rootfs) must(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// wantOwner checks the owner, group and mode of p.
func (r *rootfs) wantOwner(p string, uid, gid int, mode fs.FileMode) {
	r.t.Helper()
	st, err := os.Lstat(r.path(p))
	if err != nil {
		r.t.Error(err)
		return
	}
	s := st.Sys().(*syscall.Stat_t)
	if int(s.Uid) != uid || int(s.Gid) != gid || st.Mode() != mode {
		r.t.Errorf("%s is %d:%d %v, want %d:%d %v", p, s.Uid, s.Gid, st.Mode(), uid, gid, mode)
	}
}

// wantFile checks that p holds content.
func (r *rootfs) wantFile(p, content string) {
	r.t.Helper()
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		r.t.Errorf("%s: %v", p, err)
	} else if string(b) != content {
		r.t.Errorf("%s is not the administrator's:\n%s", p, b)
	}
}

// wantGone checks that p does not exist.
func (r *rootfs) wantGone(p string) {
	r.t.Helper()
	if _, err := os.Lstat(r.path(p)); !errors.Is(err, fs.ErrNotExist) {
		r.t.Errorf("%s is still there (%v)", p, err)
	}
}

// wantData checks that the data directory still holds the appliance's
// certificate and the node's store.
func (r *rootfs) wantData() {
	r.t.Helper()
	if _, err := os.Stat(r.path(conditionFile)); err != nil {
		r.t.Errorf("the data directory lost the appliance's certificate: %v", err)
	}
	entries, err := os.ReadDir(r.path(dataDir))
	if err != nil || len(entries) < 2 {
		r.t.Errorf("the data directory holds %d entries (%v): the node's data is gone", len(entries), err)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package browser

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/filelock"
)

const (
	// defaultPath is where Debian's chromium package puts the binary.
	defaultPath = "/usr/bin/chromium"
	// aptLock serializes apt-get across test binaries of this project.
	aptLock = "/tmp/oncehook-apt.lock"
	// installTimeout bounds the lock wait and the apt-get runs together. It is
	// below go test's default -timeout of 10 minutes, so the test fails with
	// a message and not with a panic.
	installTimeout = 8 * time.Minute
	installHint    = "install the Debian package chromium: " +
		"sudo apt-get install -y --no-install-recommends chromium " +
		"(or set CHROMIUM_PATH)"
)

var install struct {
	once sync.Once
	took time.Duration
	out  string
	err  error
}

// Chromium returns the path of the chromium binary: $CHROMIUM_PATH, else
// /usr/bin/chromium, else chromium on PATH. When none exists and the process
// runs as root with apt-get at hand, it installs the package chromium once per
// process. It calls t.Fatalf when it still finds no binary.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROMIUM_PATH=%s: %v; %s", p, err, installHint)
		}
		return p
	}
	if p, ok := lookChromium(); ok {
		return p
	}
	if os.Geteuid() != 0 {
		t.Fatalf("chromium not found and not running as root; %s", installHint)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatalf("chromium not found and apt-get missing; %s", installHint)
	}
	install.once.Do(func() {
		start := time.Now()
		install.out, install.err = aptInstall()
		install.took = time.Since(start)
	})
	if install.err != nil {
		t.Fatalf("installing chromium failed after %s: %v\n%s\n%s",
			install.took.Round(time.Second), install.err, tail(install.out, 2000), installHint)
	}
	p, ok := lookChromium()
	if !ok {
		t.Fatalf("chromium not found after apt-get install; %s", installHint)
	}
	t.Logf("chromium at %s (apt-get step took %s)", p, install.took.Round(time.Second))
	return p
}

// lookChromium finds the binary without installing it.
func lookChromium() (string, bool) {
	if fi, err := os.Stat(defaultPath); err == nil && !fi.IsDir() {
		return defaultPath, true
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, true
	}
	return "", false
}

// aptInstall installs chromium under an exclusive flock on aptLock. It runs
// apt-get update and tries again only when the first install fails, for
// example because the package lists are missing or stale.
func aptInstall() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()

	release, err := filelock.Hold(ctx, aptLock, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer release()

	// Another test binary may have installed it while we waited.
	if _, ok := lookChromium(); ok {
		return "", nil
	}
	var out bytes.Buffer
	installArgs := []string{"-o", "DPkg::Lock::Timeout=120", "install", "-y",
		"--no-install-recommends", "chromium"}
	if err := apt(ctx, &out, installArgs...); err == nil {
		return out.String(), nil
	}
	if err := apt(ctx, &out, "update"); err != nil {
		return out.String(), err
	}
	return out.String(), apt(ctx, &out, installArgs...)
}

func apt(ctx context.Context, out *bytes.Buffer, args ...string) error {
	fmt.Fprintf(out, "$ apt-get %v\n", args)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get %v: %w", args, err)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

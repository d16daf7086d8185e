package stripemock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oncehook/oncehook/internal/filelock"
	"github.com/oncehook/oncehook/internal/testenv"
)

// Version is the stripe-mock module version installed when none is found.
const Version = "v0.203.0"

// InstallCommand installs stripe-mock where Start finds it.
const InstallCommand = "go install github.com/stripe/stripe-mock@" + Version

const (
	lockPath       = "/tmp/oncehook-stripe-mock.lock"
	installTimeout = 5 * time.Minute
	readyTimeout   = 30 * time.Second
)

// Start starts a stripe-mock of its own for this test, serving plain HTTP
// on a free port of 127.0.0.1, and returns its base URL,
// "http://127.0.0.1:PORT". extraArgs are appended to stripe-mock's command
// line (e.g. "-strict-version-check"). The server is killed when the test
// ends; if the test failed, its log of requests is logged first. Start
// fails the test, never skips it, when stripe-mock is unavailable.
func Start(t testing.TB, extraArgs ...string) string {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("stripemock: stripe-mock unavailable: %v\ninstall it with: %s\n(or set STRIPE_MOCK_PATH to the binary)", err, InstallCommand)
	}
	var last string
	for range 3 { // a free port may be taken before stripe-mock binds it
		url, out, exited := start(t, bin, extraArgs)
		if !exited {
			return url
		}
		last = out
		if !strings.Contains(out, "address already in use") {
			break
		}
	}
	t.Fatalf("stripemock: %s did not start:\n%s", bin, last)
	return ""
}

// start runs one stripe-mock and waits until it answers. It returns the
// output and exited=true if stripe-mock exited before answering.
func start(t testing.TB, bin string, extraArgs []string) (url, out string, exited bool) {
	t.Helper()
	// -http-addr alone still opens HTTPS on the default :12112 (stripe-mock
	// only drops it for -http, -http-port or -http-unix, and -http-port
	// binds all interfaces), so give HTTPS a loopback port of its own.
	httpAddr, httpsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := append([]string{"-http-addr", httpAddr, "-https-addr", httpsAddr}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripemock: starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}

	url = "http://" + httpAddr
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return "", fmt.Sprintf("%v\n%s", waitErr, buf.String()), true
		default:
		}
		if ready(client, url) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("stripemock: %s not answering on %s after %v:\n%s", bin, url, readyTimeout, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("stripe-mock output (%s):\n%s", url, buf.String())
		}
	})
	return url, "", false
}

func ready(client *http.Client, url string) bool {
	req, err := http.NewRequest(http.MethodGet, url+"/v1/events", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer sk_test_123")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// binary finds stripe-mock, installing it if needed, once per process.
var binary = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("STRIPE_MOCK_PATH"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("STRIPE_MOCK_PATH=%s is not an executable file", p)
		}
		return p, nil
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, nil
	}
	goTool := goCommand()
	installed, err := installPath(goTool)
	if err != nil {
		return "", err
	}
	if isExecutable(installed) {
		return installed, nil
	}
	if err := install(goTool, installed); err != nil {
		return "", err
	}
	return installed, nil
})

// goCommand is the go command of the toolchain running the tests.
func goCommand() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" && isExecutable(p) {
		return p
	}
	return "go"
}

// installPath is where go install puts stripe-mock: GOBIN, else the bin
// directory of the first GOPATH entry.
func installPath(goTool string) (string, error) {
	out, err := exec.Command(goTool, "env", "-json", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("%s env GOBIN GOPATH: %w", goTool, err)
	}
	var env struct{ GOBIN, GOPATH string }
	if err := json.Unmarshal(out, &env); err != nil {
		return "", fmt.Errorf("%s env -json: %w", goTool, err)
	}
	if env.GOBIN != "" {
		return filepath.Join(env.GOBIN, "stripe-mock"), nil
	}
	gopath := filepath.SplitList(env.GOPATH)
	if len(gopath) == 0 || gopath[0] == "" {
		return "", errors.New("go env GOPATH is empty")
	}
	return filepath.Join(gopath[0], "bin", "stripe-mock"), nil
}

// install runs go install under an exclusive lock on lockPath, unless
// another process installed stripe-mock while we waited for the lock.
func install(goTool, installed string) error {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	release, err := filelock.Hold(ctx, lockPath, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer release()
	if isExecutable(installed) {
		return nil
	}
	cmd := exec.CommandContext(ctx, goTool, "install", "github.com/stripe/stripe-mock@"+Version)
	cmd.Dir = os.TempDir() // outside any module
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s install github.com/stripe/stripe-mock@%s: %w\n%s", goTool, Version, err, out)
	}
	if !isExecutable(installed) {
		return fmt.Errorf("go install succeeded but %s is missing", installed)
	}
	return nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lockedBuffer collects the process output while tests read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RabbitMQAddr is the RabbitMQ that machines of this kind run (Debian's
// rabbitmq-server, user guest/guest).
const RabbitMQAddr = "127.0.0.1:5672"

var vhostSeq int

// RabbitMQVhost creates a vhost of the test's own on the local RabbitMQ,
// with every permission for guest, and deletes it when the test ends. It
// returns the vhost and its URL, amqp://guest:guest@127.0.0.1:5672/VHOST.
// The test fails, naming the Debian package, if rabbitmqctl is missing or
// the broker does not answer.
func RabbitMQVhost(t testing.TB) (vhost, rawURL string) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatalf("rabbitmqctl is not installed (Debian package rabbitmq-server: apt-get install rabbitmq-server): %v", err)
	}
	if c, err := net.DialTimeout("tcp", RabbitMQAddr, 2*time.Second); err != nil {
		t.Fatalf("RabbitMQ does not listen on %s (Debian package rabbitmq-server; start it with `rabbitmq-server -detached`): %v", RabbitMQAddr, err)
	} else {
		c.Close()
	}
	freeMu.Lock()
	vhostSeq++
	vhost = fmt.Sprintf("oncehook-test-%d-%d-%d", os.Getpid(), vhostSeq, time.Now().UnixNano()%1_000_000)
	freeMu.Unlock()
	Rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() {
		if out, err := rabbitmqctl("delete_vhost", vhost); err != nil {
			t.Errorf("rabbitmqctl delete_vhost %s: %v\n%s", vhost, err, out)
		}
	})
	RabbitMQGrant(t, vhost)
	return vhost, "amqp://guest:guest@" + RabbitMQAddr + "/" + url.PathEscape(vhost)
}

// RabbitMQGrant gives guest every permission on vhost.
func RabbitMQGrant(t testing.TB, vhost string) {
	t.Helper()
	Rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
}

// RabbitMQCutOff takes vhost away from guest, as a broker outage would: it
// clears guest's permissions, so that new connections are refused, and
// closes the open connections from the server side. RabbitMQGrant ends it.
func RabbitMQCutOff(t testing.TB, vhost string) {
	t.Helper()
	Rabbitmqctl(t, "clear_permissions", "-p", vhost, "guest")
	Rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "--limit", "1000", "test: broker outage")
}

// Rabbitmqctl runs rabbitmqctl -q with args and returns its output, failing
// the test if it fails.
func Rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rabbitmqctl(args...)
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func rabbitmqctl(args ...string) (string, error) {
	out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

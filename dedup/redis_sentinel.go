package dedup

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelScheme starts a REDIS_URL that names Redis Sentinels rather than
// a Redis server.
const SentinelScheme = "redis+sentinel"

// sentinelPort is Sentinel's standard port, for an address without one.
const sentinelPort = "26379"

// Query parameters a redis+sentinel:// URL may carry; any other is refused.
const (
	sentinelUserParam     = "sentinel_username"
	sentinelPasswordParam = "sentinel_password"
)

// SentinelClient is the fast path's client for a redis+sentinel:// URL:
// go-redis's failover client, which asks the Sentinels for the master,
// follows their +switch-master news and asks again on every new
// connection. It carries the Sentinels' credentials too, so that errors can
// be redacted of them (Options has the master's alone).
type SentinelClient struct {
	*redis.Client
	sentinelUser, sentinelPassword string
}

// SentinelCredentials are the user and password the Sentinels are asked
// with ("" when none).
func (c *SentinelClient) SentinelCredentials() (user, password string) {
	return c.sentinelUser, c.sentinelPassword
}

// ParseSentinelURL reads
//
//	redis+sentinel://[user:password@]host[:port][,host[:port]…]/MASTER_NAME[/DB][?sentinel_username=U&sentinel_password=P]
//
// user and password authenticate to the master (the data node);
// sentinel_username and sentinel_password to the Sentinels. A host without
// a port is on 26379. Its errors name the problem, never a password or a
// query value.
func ParseSentinelURL(rawURL string) (*redis.FailoverOptions, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || !strings.EqualFold(scheme, SentinelScheme) {
		return nil, fmt.Errorf("not a %s:// URL", SentinelScheme)
	}
	// net/url takes one host: the list is read here, the rest by net/url
	// with a stand-in host. The authority ends at the first /, ? or #, and
	// the user information at its last @.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	} else if strings.Contains(tail, "@") {
		// A password with a raw /, ? or #: the host list read here would
		// be a piece of it, and no error may quote that.
		return nil, fmt.Errorf("an @ after the Sentinel addresses: percent-encode /, ?, # and @ in the user, the password and the parameters")
	}
	u, err := url.Parse("redis://" + userinfo + "sentinels" + tail)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL (percent-encode reserved characters of the user, password or master name)")
	}
	if u.Fragment != "" || u.RawFragment != "" || strings.Contains(tail, "#") {
		return nil, fmt.Errorf("a %s:// URL has no #fragment", SentinelScheme)
	}
	opt := &redis.FailoverOptions{}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	if hosts == "" {
		return nil, fmt.Errorf("no Sentinel address: want %s://host:port[,host:port…]/MASTER_NAME", SentinelScheme)
	}
	for a := range strings.SplitSeq(hosts, ",") {
		addr, err := sentinelAddr(a)
		if err != nil {
			return nil, err
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, addr)
	}
	path := strings.TrimPrefix(u.Path, "/")
	name, db, hasDB := strings.Cut(path, "/")
	switch {
	case name == "":
		return nil, fmt.Errorf("no master name: want %s://host:port/MASTER_NAME[/DB]", SentinelScheme)
	case strings.ContainsAny(name, " \t\r\n"):
		return nil, fmt.Errorf("the master name has white space")
	case hasDB:
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || strings.Contains(db, "/") {
			return nil, fmt.Errorf("bad database number after the master name %q: want a number from 0", name)
		}
		opt.DB = n
	}
	opt.MasterName = name
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("unreadable query parameters")
	}
	for k, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("query parameter %s is given %d times", k, len(v))
		}
		switch k {
		case sentinelUserParam:
			opt.SentinelUsername = v[0]
		case sentinelPasswordParam:
			opt.SentinelPassword = v[0]
		default:
			return nil, fmt.Errorf("unknown query parameter %q (a %s:// URL takes %s and %s)", k, SentinelScheme, sentinelUserParam, sentinelPasswordParam)
		}
	}
	if opt.SentinelUsername != "" && opt.SentinelPassword == "" {
		return nil, fmt.Errorf("%s without %s", sentinelUserParam, sentinelPasswordParam)
	}
	return opt, nil
}

// sentinelAddr checks one host[:port] of the list and returns host:port.
func sentinelAddr(a string) (string, error) {
	if a == "" {
		return "", fmt.Errorf("an empty Sentinel address in the list (two commas, or one at an end)")
	}
	host, port := a, sentinelPort
	if strings.HasPrefix(a, "[") || strings.Count(a, ":") == 1 { // [v6]:port or host:port
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return "", fmt.Errorf("bad Sentinel address %q: want host:port", a)
		}
		host, port = h, p
	} else if strings.Contains(a, ":") {
		return "", fmt.Errorf("bad Sentinel address %q: put an IPv6 address in brackets, [::1]:26379", a)
	}
	if host == "" {
		return "", fmt.Errorf("bad Sentinel address %q: no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port in Sentinel address %q: want 1 to 65535", a)
	}
	return net.JoinHostPort(host, port), nil
}

// newSentinelClient opens a failover client with the fast path's bounds:
// every command, and every question to a Sentinel, within timeout, and
// never retried on a network error.
func newSentinelClient(rawURL string, timeout time.Duration) (*SentinelClient, error) {
	opt, err := ParseSentinelURL(rawURL)
	if err != nil {
		return nil, err
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	opt.MaxRetries = -1
	opt.DialerRetries = 1 // a dead master's address fails at once, not after 5 dials
	opt.ContextTimeoutEnabled = true
	return &SentinelClient{Client: redis.NewFailoverClient(opt), sentinelUser: opt.SentinelUsername, sentinelPassword: opt.SentinelPassword}, nil
}

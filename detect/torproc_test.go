package detect

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

const testTorrc = `## written by a dropper
DataDirectory /var/tmp/.cache/d
SocksPort 127.0.0.1:9350
UseBridges 1
Bridge 198.51.100.101:443
Bridge obfs4 203.0.113.50:443 0123456789ABCDEF0123456789ABCDEF01234567 cert=AAAA iat-mode=0
ClientTransportPlugin obfs4,meek_lite exec /usr/bin/obfs4proxy
Log notice file /dev/null
`

// behaviourCase is one snapshot for the tor detector's behaviour rules.
type behaviourCase struct {
	name    string
	procs   []*collector.Process
	sockets []collector.Socket
	want    []behaviourWant
}

type behaviourWant struct {
	rule, entity string
	reasons      []string
	evidence     map[string]any // keys that must match exactly
}

func runBehaviour(t *testing.T, cfg *TorConfig, cases []behaviourCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := portEngine(t, cfg, nil)
			snap := hostSnap(t0)
			for _, p := range c.procs {
				snap.Processes[p.PID] = p
			}
			snap.Sockets = c.sockets
			all := e.Run(snap)
			var got []Alert
			for _, a := range all {
				if a.RuleID == RuleTor || a.RuleID == RuleSocksProxy {
					got = append(got, a)
				}
			}
			if len(got) != len(c.want) {
				for _, a := range got {
					t.Logf("got %s %s %v", a.RuleID, a.Entity, a.Evidence)
				}
				t.Fatalf("got %d alerts, want %d", len(got), len(c.want))
			}
			for i, w := range c.want {
				a := got[i]
				if a.RuleID != w.rule || a.Entity != w.entity || a.Technique != "T1090.003" {
					t.Errorf("alert %d: %s %s %s, want %s %s", i, a.RuleID, a.Entity, a.Technique, w.rule, w.entity)
				}
				if r, _ := a.Evidence["reasons"].([]string); !reflect.DeepEqual(r, w.reasons) {
					t.Errorf("alert %d: reasons %v, want %v", i, r, w.reasons)
				}
				for k, v := range w.evidence {
					if !reflect.DeepEqual(a.Evidence[k], v) {
						t.Errorf("alert %d: evidence %s = %#v, want %#v (message %q)", i, k, a.Evidence[k], v, a.Message)
					}
				}
			}
		})
	}
}

func TestTorByBehaviour(t *testing.T) {
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	writeTestFile(t, torrc, testTorrc)
	// The same torrc under a name that does not say torrc.
	conf := filepath.Join(dir, "settings.conf")
	writeTestFile(t, conf, testTorrc)
	nginxConf := filepath.Join(dir, "nginx.conf")
	writeTestFile(t, nginxConf, "worker_processes 1;\nevents {}\nhttp { server { listen 8080; } }\n")
	fifo := filepath.Join(dir, "pipe.conf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	const uid = 1001
	renamed := func(pid int32, args ...string) *collector.Process {
		return &collector.Process{PID: pid, PPID: 1, Name: "dbus-helper", Exe: "/var/tmp/.cache/dbus-helper",
			Cmdline: append([]string{"/var/tmp/.cache/dbus-helper"}, args...), UID: uid, User: "svc"}
	}
	bridgeConn := sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.101:443", 900)
	socksListen := sock("tcp", "LISTEN", "127.0.0.1:9350", "", 900)
	cases := []behaviourCase{
		{
			name:    "renamed tor started with -f torrc: bridge on 443 and SocksPort from the file",
			procs:   []*collector.Process{renamed(900, "-f", torrc)},
			sockets: []collector.Socket{socksListen, bridgeConn},
			want: []behaviourWant{{RuleTor, "process:dbus-helper:900", []string{"bridge_connection", "socks_listener", "torrc"},
				map[string]any{
					"torrc":              torrc,
					"torrc_read":         "read",
					"torrc_keywords":     []string{"Bridge", "ClientTransportPlugin", "DataDirectory", "SocksPort", "UseBridges"},
					"configured_bridges": []string{"198.51.100.101:443", "203.0.113.50:443"},
					"bridge_connections": []string{"198.51.100.101:443"},
					"client_transports":  []string{"obfs4", "meek_lite"},
					"listeners":          []string{"tcp/127.0.0.1:9350"},
				}}},
		},
		{
			name:    "-f naming a torrc under another name is read",
			procs:   []*collector.Process{renamed(900, "-f", conf)},
			sockets: []collector.Socket{bridgeConn},
			want:    []behaviourWant{{RuleTor, "process:dbus-helper:900", []string{"bridge_connection", "torrc"}, nil}},
		},
		{
			name:  "a torrc that cannot be read still counts by its name",
			procs: []*collector.Process{renamed(900, "-f", filepath.Join(dir, "missing", "torrc"))},
			want: []behaviourWant{{RuleTor, "process:dbus-helper:900", []string{"torrc"},
				map[string]any{"torrc_read": "not readable: no such file or directory"}}},
		},
		{
			name: "tor options on the command line, obfs4proxy child connecting to the bridge on 443",
			procs: []*collector.Process{
				renamed(900, "--UseBridges", "1", "--Bridge", "obfs4 203.0.113.50:443 0123 cert=AAAA iat-mode=0",
					"--ClientTransportPlugin", "obfs4 exec /usr/bin/obfs4proxy", "--DataDirectory", "/var/tmp/.d"),
				{PID: 901, PPID: 900, Name: "obfs4proxy", Exe: "/usr/bin/obfs4proxy", Cmdline: []string{"/usr/bin/obfs4proxy"}, UID: uid},
			},
			sockets: []collector.Socket{
				sock("tcp", "LISTEN", "127.0.0.1:37001", "", 901),
				sock("tcp", "ESTABLISHED", "10.0.0.5:41010", "203.0.113.50:443", 901),
			},
			want: []behaviourWant{
				{RuleTor, "process:dbus-helper:900", []string{"pluggable_transport", "tor_options"},
					map[string]any{
						"tor_options":         []string{"Bridge", "ClientTransportPlugin", "DataDirectory", "UseBridges"},
						"transport_processes": []string{"obfs4proxy (pid 901)"},
					}},
				{RuleTor, "process:obfs4proxy:901", []string{"bridge_connection", "pluggable_transport"},
					map[string]any{
						"tor_process":        "dbus-helper (pid 900)",
						"bridge_connections": []string{"203.0.113.50:443"},
						"listeners":          []string{"tcp/127.0.0.1:37001"},
					}},
			},
		},
		{
			name: "a renamed transport is known as the tor process's child",
			procs: []*collector.Process{
				renamed(900, "SocksPort", "9350", "UseBridges", "1"),
				{PID: 901, PPID: 900, Name: "kworker-x", Exe: "/var/tmp/.cache/kworker-x", UID: uid},
			},
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41010", "203.0.113.60:443", 901)},
			want: []behaviourWant{
				{RuleTor, "process:dbus-helper:900", []string{"pluggable_transport", "tor_options"},
					map[string]any{"transport_processes": []string{"kworker-x (pid 901)"}}},
				{RuleTor, "process:kworker-x:901", []string{"pluggable_transport"},
					map[string]any{"tor_process": "dbus-helper (pid 900)", "destinations": []string{"203.0.113.60:443"}}},
			},
		},
		{
			name: "a wrapper carrying tor's command line (timeout, sudo) is not a second Tor",
			procs: []*collector.Process{
				{PID: 890, PPID: 1, Name: "sudo", Cmdline: []string{"sudo", "timeout", "30", "tor", "--SocksPort", "9350"}},
				{PID: 891, PPID: 890, Name: "timeout", Cmdline: []string{"timeout", "30", "tor", "--SocksPort", "9350"}},
				{PID: 900, PPID: 891, Name: "tor", Cmdline: []string{"tor", "--SocksPort", "9350"}},
			},
			sockets: []collector.Socket{socksListen},
			want:    []behaviourWant{{RuleTor, "process:tor:900", []string{"socks_listener", "tor_options", "tor_process"}, nil}},
		},
		{
			name:    "standalone snowflake-client",
			procs:   []*collector.Process{{PID: 950, PPID: 200, Name: "snowflake-clien", Exe: "/usr/bin/snowflake-client", Cmdline: []string{"snowflake-client", "-url", "https://snowflake-broker.example/"}}},
			sockets: []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41020", "203.0.113.70:443", 950)},
			want: []behaviourWant{{RuleTor, "process:snowflake-clien:950", []string{"pluggable_transport"},
				map[string]any{"destinations": []string{"203.0.113.70:443"}}}},
		},
		{
			name:  "unprivileged: unowned sockets are tied by uid only when they are the process's configured bridge or SocksPort",
			procs: []*collector.Process{renamed(900, "-f", torrc)},
			sockets: func() []collector.Socket {
				l, b := socksListen, bridgeConn
				other := sock("tcp", "ESTABLISHED", "10.0.0.5:41001", "203.0.113.99:443", 0)
				l.PID, b.PID = 0, 0
				l.UID, b.UID, other.UID = uid, uid, uid
				return []collector.Socket{l, b, other}
			}(),
			want: []behaviourWant{{RuleTor, "process:dbus-helper:900", []string{"bridge_connection", "socks_listener", "torrc"},
				map[string]any{"sockets_tied_by_uid": 2, "destinations": []string{"198.51.100.101:443"}}}},
		},
		{
			name:  "unprivileged: another uid's socket to the same bridge is not tied",
			procs: []*collector.Process{renamed(900, "-f", torrc)},
			sockets: func() []collector.Socket {
				b := bridgeConn
				b.PID, b.UID = 0, 4242
				return []collector.Socket{b}
			}(),
			want: []behaviourWant{{RuleTor, "process:dbus-helper:900", []string{"torrc"}, map[string]any{"connections": 0}}},
		},
		{
			name:  "-f naming a file that is not a torrc, a FIFO, or nothing: no alert",
			procs: []*collector.Process{renamed(900, "-f", nginxConf), renamed(901, "-f", fifo), renamed(902, "-f")},
		},
	}
	runBehaviour(t, torCfg(nil), cases)
}

func TestTorrcReadingOff(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "settings.conf")
	writeTestFile(t, conf, testTorrc)
	cfg := torCfg(func(c *TorConfig) { c.ReadTorrc = false })
	runBehaviour(t, cfg, []behaviourCase{{
		name: "read_torrc false: a file not named torrc is not opened",
		procs: []*collector.Process{{PID: 900, PPID: 1, Name: "x", Cmdline: []string{"x", "-f", conf}},
			{PID: 901, PPID: 1, Name: "y", Cmdline: []string{"y", "-f", "/etc/tor/torrc"}}},
		want: []behaviourWant{{RuleTor, "process:y:901", []string{"torrc"},
			map[string]any{"torrc_read": "torrc reading disabled (read_torrc: false)"}}},
	}})
}

// Benign hosts: browsers, package managers, services and tools whose command
// lines or sockets look a little like Tor's raise nothing.
func TestTorBenignProcessTables(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "syslog")
	writeTestFile(t, logf, "Nov 30 10:00:00 host tor[1]: Bootstrapped 100%\nBridge is up\n")
	p := func(pid, ppid int32, name, exe string, args ...string) *collector.Process {
		return &collector.Process{PID: pid, PPID: ppid, Name: name, Exe: exe, Cmdline: append([]string{exe}, args...), UID: 1000, User: "alice"}
	}
	procs := []*collector.Process{
		p(1000, 200, "firefox-esr", "/usr/lib/firefox-esr/firefox-esr"),
		p(1001, 1000, "Web Content", "/usr/lib/firefox-esr/firefox-esr", "-contentproc", "-childID", "1", "-isForBrowser", "-prefsLen", "29430", "tab"),
		p(1002, 1000, "Socket Process", "/usr/lib/firefox-esr/firefox-esr", "-contentproc", "-parentBuildID", "20251110", "socket"),
		p(1100, 200, "chrome", "/opt/google/chrome/chrome", "--remote-debugging-port=9222", "--user-data-dir=/tmp/ci-profile"),
		p(1101, 1100, "chrome", "/opt/google/chrome/chrome", "--type=utility", "--utility-sub-type=network.mojom.NetworkService", "--lang=en-US"),
		p(1200, 200, "apt-get", "/usr/bin/apt-get", "install", "-y", "tor", "obfs4proxy"),
		p(1201, 1200, "https", "/usr/lib/apt/methods/https"),
		p(1202, 1200, "http", "/usr/lib/apt/methods/http"),
		p(1300, 1, "tail", "/usr/bin/tail", "-f", logf),
		p(1301, 1, "nginx", "/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"),
		p(1302, 1, "docker-proxy", "/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8443",
			"-container-ip", "172.17.0.2", "-container-port", "443"),
		p(1303, 1, "qemu-system-x86", "/usr/bin/qemu-system-x86_64", "-netdev", "bridge,id=n0,br=br0", "-device", "virtio-net,netdev=n0"),
		p(1304, 1, "dnsmasq", "/usr/sbin/dnsmasq", "--bind-interfaces", "--interface=br0", "--dhcp-range=10.0.3.2,10.0.3.254"),
		p(1305, 200, "ssh", "/usr/bin/ssh", "-D", "1080", "-N", "jump.example.org"),
		p(1306, 1, "syncthing", "/usr/bin/syncthing", "serve", "--no-browser", "--gui-address=127.0.0.1:8384"),
		p(1307, 1, "squid", "/usr/sbin/squid", "-f", "/etc/squid/squid.conf", "--foreground"),
		p(1308, 200, "docker", "/usr/bin/docker", "network", "create", "--driver", "bridge", "--bridge", "br1"),
		p(1309, 200, "python3", "/usr/bin/python3", "-m", "http.server", "8000"),
	}
	ext := func(local string, host string, pid int32) collector.Socket {
		return sock("tcp", "ESTABLISHED", local, host, pid)
	}
	sockets := []collector.Socket{
		// Firefox (network in the parent or the socket process) to many CDNs.
		ext("10.0.0.5:50001", "203.0.113.1:443", 1000), ext("10.0.0.5:50002", "203.0.113.2:443", 1000),
		ext("10.0.0.5:50003", "203.0.113.3:443", 1002), ext("10.0.0.5:50004", "198.51.100.4:443", 1002),
		// Chrome: the debugging port on the browser process with a CI driver
		// connected, the network in the network service.
		sock("tcp", "LISTEN", "127.0.0.1:9222", "", 1100),
		sock("tcp", "ESTABLISHED", "127.0.0.1:9222", "127.0.0.1:51000", 1100),
		sock("tcp", "ESTABLISHED", "127.0.0.1:51000", "127.0.0.1:9222", 1309),
		ext("10.0.0.5:50010", "203.0.113.10:443", 1101), ext("10.0.0.5:50011", "203.0.113.11:443", 1101),
		ext("10.0.0.5:50012", "203.0.113.12:443", 1101), ext("10.0.0.5:50013", "198.51.100.13:443", 1101),
		// apt's methods to mirrors.
		ext("10.0.0.5:50020", "198.51.100.20:443", 1201), ext("10.0.0.5:50021", "198.51.100.21:80", 1202),
		// nginx: public listener, LAN clients, an external upstream.
		sock("tcp", "LISTEN", "0.0.0.0:443", "", 1301),
		sock("tcp", "ESTABLISHED", "10.0.0.5:443", "10.0.0.9:40000", 1301),
		ext("10.0.0.5:50030", "203.0.113.30:443", 1301), ext("10.0.0.5:50031", "203.0.113.31:443", 1301),
		ext("10.0.0.5:50032", "203.0.113.32:443", 1301),
		// docker-proxy: published port, the container behind it.
		sock("tcp", "LISTEN", "0.0.0.0:8443", "", 1302),
		sock("tcp", "ESTABLISHED", "172.17.0.1:50040", "172.17.0.2:443", 1302),
		// ssh -D: a SOCKS listener in use, one ssh connection out.
		sock("tcp", "LISTEN", "127.0.0.1:1080", "", 1305),
		sock("tcp", "ESTABLISHED", "127.0.0.1:1080", "127.0.0.1:51010", 1305),
		sock("tcp", "ESTABLISHED", "127.0.0.1:51010", "127.0.0.1:1080", 1000),
		ext("10.0.0.5:50050", "198.51.100.50:22", 1305),
		// syncthing: GUI listener, nobody connected, relays and discovery.
		sock("tcp", "LISTEN", "127.0.0.1:8384", "", 1306),
		sock("tcp", "LISTEN", "0.0.0.0:22000", "", 1306),
		ext("10.0.0.5:50060", "203.0.113.60:443", 1306), ext("10.0.0.5:50061", "203.0.113.61:443", 1306),
		ext("10.0.0.5:50062", "203.0.113.62:22067", 1306), ext("10.0.0.5:50063", "203.0.113.63:443", 1306),
		// squid: the office's forward proxy, on purpose.
		sock("tcp", "LISTEN", "0.0.0.0:3128", "", 1307),
		sock("tcp", "ESTABLISHED", "127.0.0.1:3128", "127.0.0.1:51020", 1307),
		sock("tcp", "ESTABLISHED", "127.0.0.1:51020", "127.0.0.1:3128", 1000),
		ext("10.0.0.5:50070", "203.0.113.70:443", 1307), ext("10.0.0.5:50071", "203.0.113.71:443", 1307),
		ext("10.0.0.5:50072", "203.0.113.72:443", 1307),
		// python's http.server with a local client.
		sock("tcp", "LISTEN", "0.0.0.0:8000", "", 1309),
	}
	e := portEngine(t, torCfg(nil), nil)
	for i := 0; i < 3; i++ { // a few polls: caches and windows included
		snap := hostSnap(t0.Add(time.Duration(i) * time.Second))
		for _, p := range procs {
			snap.Processes[p.PID] = p
		}
		snap.Sockets = sockets
		for _, a := range e.Run(snap) {
			if a.RuleID == RuleTor || a.RuleID == RuleSocksProxy {
				t.Errorf("benign host raised %s %s: %s", a.RuleID, a.Entity, a.Message)
			}
		}
	}
}

func TestSocksProxyFanout(t *testing.T) {
	agent := &collector.Process{PID: 960, PPID: 1, Name: "svc-agent", Exe: "/var/tmp/svc-agent",
		Cmdline: []string{"/var/tmp/svc-agent", "-i", "127.0.0.1", "-p", "31337"}}
	squid := &collector.Process{PID: 960, PPID: 1, Name: "squid", Exe: "/usr/sbin/squid"}
	base := []collector.Socket{
		sock("tcp", "LISTEN", "127.0.0.1:31337", "", 960),
		sock("tcp", "ESTABLISHED", "127.0.0.1:31337", "127.0.0.1:52000", 960),
		sock("tcp", "ESTABLISHED", "127.0.0.1:52000", "127.0.0.1:31337", 440),
		sock("tcp", "ESTABLISHED", "127.0.0.1:31337", "127.0.0.1:52001", 960),
		sock("tcp", "ESTABLISHED", "127.0.0.1:52001", "127.0.0.1:31337", 440),
	}
	out := func(n int) []collector.Socket {
		var s []collector.Socket
		for i := 0; i < n; i++ {
			s = append(s, sock("tcp", "ESTABLISHED", "10.0.0.5:4100"+string(rune('0'+i)), "203.0.113.10"+string(rune('0'+i))+":443", 960))
		}
		return s
	}
	lanClients := []collector.Socket{
		sock("tcp", "LISTEN", "0.0.0.0:31337", "", 960),
		sock("tcp", "ESTABLISHED", "10.0.0.5:31337", "10.0.0.9:52000", 960),
	}
	cases := []behaviourCase{
		{
			name: "local client through an odd-port listener, three external hosts on 443", procs: []*collector.Process{agent},
			sockets: append(append([]collector.Socket(nil), base...), out(3)...),
			want: []behaviourWant{{RuleSocksProxy, "proxy:svc-agent:31337", []string{"proxy_fanout"},
				map[string]any{"local_clients": 2, "external_hosts": 3, "listener": "127.0.0.1:31337",
					"destinations": []string{"203.0.113.100:443", "203.0.113.101:443", "203.0.113.102:443"}}}},
		},
		{name: "two hosts are not a fan-out", procs: []*collector.Process{agent}, sockets: append(append([]collector.Socket(nil), base...), out(2)...)},
		{name: "no local client", procs: []*collector.Process{agent}, sockets: append([]collector.Socket{base[0]}, out(4)...)},
		{name: "clients only from the LAN", procs: []*collector.Process{agent}, sockets: append(append([]collector.Socket(nil), lanClients...), out(4)...)},
		{name: "an allowed forward proxy", procs: []*collector.Process{squid}, sockets: append(append([]collector.Socket(nil), base...), out(4)...)},
	}
	runBehaviour(t, torCfg(nil), cases)
	runBehaviour(t, torCfg(func(c *TorConfig) { c.ProxyMinHosts = 0 }), []behaviourCase{
		{name: "proxy_min_hosts 0 turns the rule off", procs: []*collector.Process{agent}, sockets: append(append([]collector.Socket(nil), base...), out(5)...)},
	})
}

func TestTorCmdlineOptions(t *testing.T) {
	cls := newTorClassifier([]string{"tor"}, DefaultTransportNames, true)
	cases := []struct {
		args []string
		want []string // reasons; nil: not Tor
	}{
		{[]string{"x", "--SocksPort", "9050"}, []string{"tor_options"}},
		{[]string{"x", "--socksport", "9050"}, []string{"tor_options"}}, // Tor reads options in any case
		{[]string{"x", "SocksPort", "9050"}, []string{"tor_options"}},
		{[]string{"x", "socksport", "9050"}, nil}, // a bare word only in Tor's spelling
		{[]string{"x", "--defaults-torrc", "/dev/null"}, []string{"tor_options"}},
		{[]string{"x", "--ClientTransportPlugin", "snowflake exec /usr/bin/snowflake-client"}, []string{"tor_options"}},
		{[]string{"x", "--bridge", "br0"}, nil},           // other programs' --bridge
		{[]string{"x", "--DataDirectory", "/tmp/d"}, nil}, // not Tor's alone
		{[]string{"x", "--ControlPort", "9051"}, nil},     // not Tor's alone
		{[]string{"x", "--transport", "tcp", "--dnsport", "53"}, nil},
		{[]string{"tor"}, []string{"tor_process"}},
		{[]string{"obfs4proxy", "-enableLogging"}, []string{"pluggable_transport"}},
	}
	for _, c := range cases {
		p := &collector.Process{PID: 7, Name: filepath.Base(c.args[0]), Cmdline: c.args}
		s := cls.signs(p)
		var got []string
		if s != nil {
			got = s.reasons
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: reasons %v, want %v", strings.Join(c.args, " "), got, c.want)
		}
	}
}

func TestParseTorrc(t *testing.T) {
	keys, bridges, transports, socks := parseTorrc([]byte(testTorrc + "socksport [::1]:9999 IsolateDestAddr\nbridge\tsnowflake 192.0.2.3:80 fp\n  # Bridge 192.0.2.9:1\n"))
	if !reflect.DeepEqual(keys, []string{"DataDirectory", "SocksPort", "UseBridges", "Bridge", "ClientTransportPlugin"}) {
		t.Errorf("keys %v", keys)
	}
	var bs []string
	for _, b := range bridges {
		bs = append(bs, b.String())
	}
	if !reflect.DeepEqual(bs, []string{"198.51.100.101:443", "203.0.113.50:443", "192.0.2.3:80"}) {
		t.Errorf("bridges %v", bs)
	}
	if !reflect.DeepEqual(transports, []string{"obfs4", "meek_lite"}) || !reflect.DeepEqual(socks, []uint16{9350, 9999}) {
		t.Errorf("transports %v socks %v", transports, socks)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Tor alerts at first sight; the transport it spawns a poll later alerts
// then, as its own process, naming its Tor.
func TestTorTransportSpawnedLater(t *testing.T) {
	e := portEngine(t, torCfg(nil), nil)
	tor := &collector.Process{PID: 900, PPID: 1, Name: "tor", Cmdline: []string{"tor", "--UseBridges", "1", "--Bridge", "obfs4 203.0.113.50:443 FP cert=x"}}
	pt := &collector.Process{PID: 901, PPID: 900, Name: "obfs4proxy"}

	snap := hostSnap(t0)
	snap.Processes[900] = tor
	got := alertsByRule(e.Run(snap), RuleTor)
	if len(got) != 1 || got[0].Entity != "process:tor:900" {
		t.Fatalf("first poll: %+v", got)
	}
	snap = hostSnap(t0.Add(time.Second))
	snap.Processes[900], snap.Processes[901] = tor, pt
	snap.Sockets = []collector.Socket{sock("tcp", "ESTABLISHED", "10.0.0.5:41010", "203.0.113.50:443", 901)}
	got = alertsByRule(e.Run(snap), RuleTor)
	if len(got) != 1 || got[0].Entity != "process:obfs4proxy:901" || got[0].Evidence["tor_process"] != "tor (pid 900)" {
		t.Fatalf("second poll: %+v", got)
	}
	if r := got[0].Evidence["reasons"]; !reflect.DeepEqual(r, []string{"bridge_connection", "pluggable_transport"}) {
		t.Errorf("reasons %v", r)
	}
}

// Another user's connection to a Tor port, unprivileged: keyed and described
// by the socket's uid, not pooled under "unknown".
func TestTorUnownedConnectionKeyedByUID(t *testing.T) {
	e := portEngine(t, torCfg(nil), nil)
	snap := hostSnap(t0)
	s := sock("tcp", "ESTABLISHED", "10.0.0.5:41000", "198.51.100.40:9030", 0)
	s.UID, s.Inode = 1000, 4242
	snap.Sockets = []collector.Socket{s}
	got := alertsByRule(e.Run(snap), RuleTor)
	if len(got) != 1 || got[0].Entity != "conn:uid:1000:198.51.100.40:9030" ||
		got[0].Evidence["owner_uid"] != uint32(1000) || got[0].Evidence["owner_user"] != "alice" {
		t.Fatalf("got %+v", got)
	}
}

// A torrc on a file system that never answers (a hung NFS mount, a user's
// FUSE file system) costs one poll at most torrcReadTimeout, and once
// maxPendingTorrcReads reads hang no more are started.
func TestTorrcReadNeverStallsDetection(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	cls := newTorClassifier([]string{"tor"}, nil, true)
	var started atomic.Int32
	cls.read = func(string) ([]byte, error) { // the hung file system
		started.Add(1)
		<-release
		return nil, errors.New("released")
	}
	for i := 0; i < maxPendingTorrcReads+2; i++ {
		p := &collector.Process{PID: int32(100 + i), Name: "x", Cmdline: []string{"x", "-f", "/mnt/fuse/torrc"}}
		begin := time.Now()
		s := cls.classify(p)
		if d := time.Since(begin); d > torrcReadTimeout+time.Second {
			t.Fatalf("classify blocked %v", d)
		}
		if s == nil || s.torrcRead == "read" || !strings.HasPrefix(s.torrcRead, "not read") {
			t.Fatalf("process %d: signs %+v", i, s)
		}
	}
	if n := started.Load(); n != maxPendingTorrcReads {
		t.Errorf("%d reads started, want at most %d while they hang", n, maxPendingTorrcReads)
	}
}

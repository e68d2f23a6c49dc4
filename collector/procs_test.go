package collector

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, elem ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, elem...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    procStat
		wantErr bool
	}{
		{
			name: "real line",
			data: "6374 (cat) R 6370 6370 3700 0 -1 4194304 102 0 0 0 0 0 0 0 20 0 1 0 299349 3133440 390 18446744073709551615 93841861693440 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
			want: procStat{PID: 6374, Comm: "cat", State: 'R', PPID: 6370, PGID: 6370, Session: 3700, StartTicks: 299349},
		},
		{
			name: "comm with spaces and parentheses",
			data: string(readFixture(t, "proc", "4242", "stat")),
			want: procStat{PID: 4242, Comm: "my (evil) proc", State: 'S', PPID: 1, PGID: 4242, Session: 4242, StartTicks: 360000},
		},
		{
			name: "comm that looks like fields",
			data: "12 (x) R 999 1 1) S 7 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n",
			want: procStat{PID: 12, Comm: "x) R 999 1 1", State: 'S', PPID: 7, PGID: 1, Session: 1, StartTicks: 4242},
		},
		{
			name: "comm with a newline and invalid UTF-8",
			data: "13 (a\nb\xff) S 2 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0\n",
			want: procStat{PID: 13, Comm: "a\nb\uFFFD", State: 'S', PPID: 2, StartTicks: 77},
		},
		{
			name: "shell on /dev/pts/3 (tty_nr 34819) in its own session",
			data: "2001 (bash) S 2000 2001 2001 34819 2001 4194560 0 0 0 0 0 0 0 0 20 0 1 0 9000 0 0\n",
			want: procStat{PID: 2001, Comm: "bash", State: 'S', PPID: 2000, PGID: 2001, Session: 2001, TTY: 34819, StartTicks: 9000},
		},
		{
			name: "largest values",
			data: "2147483647 (x) S 2147483647 2147483647 2147483647 4294967295 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551615 0 0\n",
			want: procStat{PID: 1<<31 - 1, Comm: "x", State: 'S', PPID: 1<<31 - 1, PGID: 1<<31 - 1, Session: 1<<31 - 1, TTY: 1<<32 - 1, StartTicks: 1<<64 - 1},
		},
		{name: "empty", data: "", wantErr: true},
		{name: "no closing parenthesis", data: "1 (init S 0 1 1", wantErr: true},
		{name: "cut before starttime", data: "1 (init) S 0 1 1 0 -1 0 0 0", wantErr: true},
		{name: "bad pid", data: "x1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "bad ppid", data: "1 (init) S -4 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "bad starttime", data: "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0", wantErr: true},
		{name: "bad pgrp", data: "1 (init) S 0 x 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "negative session", data: "1 (init) S 0 1 -1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "negative tty_nr", data: "1 (init) S 0 1 1 -3 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "tty_nr beyond 32 bits", data: "1 (init) S 0 1 1 4294967296 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "pid beyond 31 bits", data: "2147483648 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "pgrp with a sign", data: "1 (init) S 0 +1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "starttime beyond 64 bits", data: "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551616 0 0", wantErr: true},
		{name: "state of two letters", data: "1 (init) SS 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", wantErr: true},
		{name: "only the comm", data: "1 (init)", wantErr: true},
		{name: "malformed fixture", data: string(readFixture(t, "proc", "500", "stat")), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.data))
			if tt.wantErr {
				if !errors.Is(err, ErrFileParse) {
					t.Fatalf("err = %v, want ErrFileParse", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The stat parser runs for every new process and every revalidation: it
// allocates only the command name.
func TestParseProcStatAllocations(t *testing.T) {
	data := []byte("2001 (bash) S 2000 2001 2001 34819 2001 4194560 0 0 0 0 0 0 0 0 20 0 1 0 9000 0 0 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
	var st procStat
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if st, err = parseProcStat(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("parseProcStat allocates %.0f times per call, want at most 1 (the comm)", allocs)
	}
	if st.TTY != 34819 {
		t.Errorf("tty_nr %d", st.TTY)
	}
}

func TestPTSIndex(t *testing.T) {
	for _, tc := range []struct {
		tty  uint32
		n    int
		ok   bool
		name string
	}{
		{0, 0, false, "no terminal"},
		{136 << 8, 0, true, "/dev/pts/0"},
		{136<<8 | 3, 3, true, "/dev/pts/3"},
		// minor 300 = 0x12c: low byte 0x2c, bits 8-19 of the minor at 20-31
		{136<<8 | 0x2c | 0x1<<20, 300, true, "/dev/pts/300"},
		{4<<8 | 1, 0, false, "/dev/tty1"},
		{5<<8 | 1, 0, false, "/dev/console"},
	} {
		n, ok := PTSIndex(tc.tty)
		if n != tc.n || ok != tc.ok {
			t.Errorf("%s: PTSIndex(%d) = %d, %v; want %d, %v", tc.name, tc.tty, n, ok, tc.n, tc.ok)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	got, err := parseProcStatus(readFixture(t, "proc", "31337", "status"))
	if err != nil {
		t.Fatal(err)
	}
	want := procStatus{Name: "python3", PPID: 4242, UIDs: [4]uint32{1000, 0, 0, 0}}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	got, err = parseProcStatus(readFixture(t, "proc", "4242", "status"))
	if err != nil || got.Name != "my (evil) proc" {
		t.Errorf("evil name: got %+v, %v", got, err)
	}

	for name, data := range map[string]string{
		"empty":         "",
		"no uid":        "Name:\tx\nPPid:\t1\n",
		"short uid":     "Name:\tx\nPPid:\t1\nUid:\t0\t0\n",
		"bad uid":       "Name:\tx\nPPid:\t1\nUid:\t0\t0\tx\t0\n",
		"bad ppid":      "Name:\tx\nPPid:\tone\nUid:\t0\t0\t0\t0\n",
		"negative ppid": "Name:\tx\nPPid:\t-1\nUid:\t0\t0\t0\t0\n",
	} {
		if _, err := parseProcStatus([]byte(data)); !errors.Is(err, ErrFileParse) {
			t.Errorf("%s: err = %v, want ErrFileParse", name, err)
		}
	}
	_, err = parseProcStatus([]byte("Name:\tx\nPPid:\tone\nUid:\t0\t0\t0\t0\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error should name line 2: %v", err)
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"kernel thread", nil, nil},
		{"only NULs", []byte("\x00\x00"), nil},
		{"one arg", []byte("/sbin/init\x00"), []string{"/sbin/init"}},
		{"no final NUL", []byte("nginx: worker process"), []string{"nginx: worker process"}},
		{"empty middle arg kept", readFixture(t, "proc", "4242", "cmdline"), []string{"./evil", "-c", "", "echo hi"}},
		{"newline and invalid UTF-8", readFixture(t, "proc", "31337", "cmdline"),
			[]string{"python3", "-c", "import os\nos.system(\"id\")", "\uFFFDbad-utf8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCmdline(tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCmdlineMegabyte(t *testing.T) {
	// 12 arguments of 100 KB: a cmdline over one megabyte, as a packed
	// payload would be.
	var b strings.Builder
	arg := strings.Repeat("A", 100_000)
	for range 12 {
		b.WriteString(arg)
		b.WriteByte(0)
	}
	got := parseCmdline([]byte(b.String()))
	if len(got) != 12 || got[11] != arg {
		t.Fatalf("got %d args", len(got))
	}
}

func TestParseBootTime(t *testing.T) {
	bt, err := parseBootTime(readFixture(t, "proc", "stat"))
	if err != nil || bt != 1700000000 {
		t.Fatalf("got %d, %v", bt, err)
	}
	for _, bad := range []string{"", "cpu 1 2 3\n", "btime\n", "btime x\n", "btime -3\n", "btime 1 2\n"} {
		if _, err := parseBootTime([]byte(bad)); !errors.Is(err, ErrFileParse) {
			t.Errorf("%q: err = %v, want ErrFileParse", bad, err)
		}
	}
}

func TestProcessName(t *testing.T) {
	tests := []struct {
		comm    string
		cmdline []string
		exe     string
		want    string
	}{
		{"bash", []string{"-bash"}, "/usr/bin/bash", "bash"},
		{"systemd-journal", []string{"/lib/systemd/systemd-journald"}, "", "systemd-journald"},
		{"systemd-journal", nil, "/usr/lib/systemd/systemd-journald (deleted)", "systemd-journald"},
		{"kworker/0:1-eve", nil, "", "kworker/0:1-eve"},
		// a cut comm is not replaced by an unrelated argv[0]
		{"abcdefghijklmno", []string{"/bin/zzz"}, "", "abcdefghijklmno"},
		{"postgres: check", []string{"postgres: checkpointer"}, "", "postgres: check"},
	}
	for _, tt := range tests {
		if got := processName(tt.comm, tt.cmdline, tt.exe); got != tt.want {
			t.Errorf("processName(%q, %q, %q) = %q, want %q", tt.comm, tt.cmdline, tt.exe, got, tt.want)
		}
	}
}

func TestParseUptime(t *testing.T) {
	if d, err := parseUptime([]byte("350.27 690.12\n")); err != nil || d != 350270*time.Millisecond {
		t.Errorf("got %v, %v", d, err)
	}
	for _, bad := range []string{"", "x 1", "-1 2", "NaN 1", "Inf 2", "10000000000"} {
		if _, err := parseUptime([]byte(bad)); !errors.Is(err, ErrFileParse) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
